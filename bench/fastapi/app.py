"""The FastAPI peer of this project's login and item read, for the bench (bench/src/main.rs).

It does the same work per request as the Rust functions, the way a FastAPI user would write it
(the full-stack-fastapi-template's `deps.py` and `login.py`): OAuth2 password login with argon2id
at the same OWASP parameters (m=19456 KiB, t=2, p=1), a per-email failure counter, an HS256 JWT
with the same claims (`sub`, `iat`, `exp`, `iss`, `aud`, `jti`, `typ: at+jwt`) and a hashed
refresh token recorded server-side; an item read that verifies the token (algorithm, issuer,
audience and type pinned), loads the user (so deactivation counts at once), loads the item and
answers it with its `ETag`. Responses are serialised by orjson. The store is in memory, as the
Rust local server's is in the bench.

Run: `uvicorn app:app --app-dir bench/fastapi --workers 1` with JWT_SECRET,
FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD set.
"""

import hashlib
import os
import secrets
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any

import jwt
import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, FastAPI, Form, Header, HTTPException, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, ConfigDict, Field


class OrjsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


SECRET = os.environ["JWT_SECRET"]
ISSUER = os.environ.get("JWT_ISSUER", "lambda-api")
AUDIENCE = os.environ.get("JWT_AUDIENCE", "lambda-api")
ACCESS_TTL = 15 * 60
REFRESH_TTL = 7 * 24 * 3600
MAX_FAILURES = 5
WINDOW = 15 * 60

hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))

lock = threading.Lock()
users_by_id: dict[str, dict] = {}
users_by_email: dict[str, dict] = {}
items: dict[tuple[str, str], dict] = {}
failures: dict[str, tuple[int, float]] = {}
refresh_tokens: dict[str, dict] = {}

app = FastAPI(title="FastAPI peer", default_response_class=OrjsonResponse)
oauth2 = OAuth2PasswordBearer(tokenUrl="/v1/auth/token")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def create_user(email: str, password: str, superuser: bool = False) -> dict:
    user = {
        "id": str(uuid.uuid4()),
        "email": email.lower(),
        "password_hash": hasher.hash(password),
        "is_active": True,
        "is_superuser": superuser,
    }
    with lock:
        users_by_id[user["id"]] = user
        users_by_email[user["email"]] = user
    return user


if os.environ.get("FIRST_SUPERUSER_EMAIL"):
    create_user(os.environ["FIRST_SUPERUSER_EMAIL"], os.environ["FIRST_SUPERUSER_PASSWORD"], True)


def invalid_grant() -> HTTPException:
    return HTTPException(status_code=400, detail={"error": "invalid_grant"})


@app.post("/v1/auth/token")
def login(
    grant_type: Annotated[str, Form(pattern="^password$")],
    username: Annotated[str, Form(max_length=256)],
    password: Annotated[str, Form(max_length=256)],
    response: Response,
) -> dict:
    # A sync endpoint: FastAPI runs it on its thread pool, so hashing does not block the loop.
    key = username.strip().lower()
    now = time.time()
    with lock:
        count, started = failures.get(key, (0, now))
        if now - started > WINDOW:
            count, started = 0, now
        failures[key] = (count + 1, started)
        user = users_by_email.get(key)
    if count + 1 > MAX_FAILURES:
        raise HTTPException(status_code=429, headers={"Retry-After": str(int(started + WINDOW - now) + 1)})
    try:
        verified = hasher.verify(user["password_hash"] if user else DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        verified = False
    if not (user and verified and user["is_active"]):
        raise invalid_grant()
    with lock:
        failures.pop(key, None)
    issued = int(now)
    access = jwt.encode(
        {
            "sub": user["id"],
            "iat": issued,
            "exp": issued + ACCESS_TTL,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "jti": str(uuid.uuid4()),
        },
        SECRET,
        algorithm="HS256",
        headers={"typ": "at+jwt"},
    )
    refresh = secrets.token_urlsafe(32)
    with lock:
        refresh_tokens[hashlib.sha256(refresh.encode()).hexdigest()] = {
            "user_id": user["id"],
            "family_id": str(uuid.uuid4()),
            "expires_at": now + REFRESH_TTL,
            "used": False,
        }
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return {"access_token": access, "token_type": "bearer", "expires_in": ACCESS_TTL, "refresh_token": refresh}


def credentials_error() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def current_user(token: Annotated[str, Depends(oauth2)]) -> dict:
    try:
        if jwt.get_unverified_header(token).get("typ") != "at+jwt":
            raise credentials_error()
        claims = jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            issuer=ISSUER,
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.InvalidTokenError:
        raise credentials_error() from None
    user = users_by_id.get(claims["sub"])
    if user is None:
        raise credentials_error()
    if not user["is_active"]:
        raise HTTPException(status_code=403, detail="Inactive user")
    return user


CurrentUser = Annotated[dict, Depends(current_user)]


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=255)


class ItemResponse(BaseModel):
    id: uuid.UUID
    title: str
    description: str | None
    owner_id: uuid.UUID
    created_at: str
    updated_at: str


@app.post("/v1/items", status_code=201, response_model=ItemResponse)
async def create_item(body: ItemCreate, user: CurrentUser, response: Response) -> dict:
    stamp = now_iso()
    item = {
        "id": str(uuid.uuid4()),
        "title": body.title,
        "description": body.description,
        "owner_id": user["id"],
        "version": 1,
        "created_at": stamp,
        "updated_at": stamp,
    }
    items[(user["id"], item["id"])] = item
    response.headers["Location"] = f"/v1/items/{item['id']}"
    response.headers["ETag"] = f'"{item["version"]}"'
    return item


@app.get("/v1/items/{item_id}", response_model=ItemResponse)
async def read_item(item_id: uuid.UUID, user: CurrentUser, response: Response) -> dict:
    item = items.get((user["id"], str(item_id)))
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    response.headers["ETag"] = f'"{item["version"]}"'
    return item
