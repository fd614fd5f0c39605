//! What the template deploys around the functions to run them in production: the stage's
//! throttling (a cost ceiling for all clients together, lower on the routes that hash a password
//! or send mail), its access log as JSON with retention, and auth's optional reserved
//! concurrency.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use super::template::{tagged, template};

/// The routes each of whose requests runs argon2id or queues a message: token (a login),
/// signup, password change, password recovery and reset, a new verification email. Left at
/// the default on purpose: `PATCH /v1/users/me` (a password check to change an address) shares
/// its route with the hot `GET`; the superuser's `POST /v1/users` and `PATCH /v1/users/{id}`
/// share theirs with listings and reads.
const HASHING_OR_MAIL: [&str; 6] = [
    "/v1/auth/token",
    "/v1/auth/password-recovery",
    "/v1/auth/reset-password",
    "/v1/users/signup",
    "/v1/users/me/password",
    "/v1/users/me/verification-email",
];

#[test]
fn the_stage_throttles_every_route_and_those_that_hash_or_send_mail_lower() {
    let t = template();
    let api = &t["Resources"]["Api"]["Properties"];
    let limits = |settings: &serde_norway::Value| {
        (
            tagged(&settings["ThrottlingRateLimit"], "!Ref").as_str().unwrap().to_owned(),
            tagged(&settings["ThrottlingBurstLimit"], "!Ref").as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(limits(&api["DefaultRouteSettings"]), ("ApiRateLimit".into(), "ApiBurstLimit".into()));
    // Route keys as SAM makes them: every route is ANY (the router answers the methods).
    let routes = api["RouteSettings"].as_mapping().unwrap();
    let keys: BTreeSet<String> = routes.keys().map(|k| k.as_str().unwrap().to_owned()).collect();
    let contract: BTreeSet<String> = api_tests::api_routes().into_iter().map(|(_, path, _)| path).collect();
    let expected: BTreeSet<String> = HASHING_OR_MAIL.iter().map(|p| format!("ANY {p}")).collect();
    assert_eq!(keys, expected);
    for path in HASHING_OR_MAIL {
        assert!(contract.contains(path), "{path} is a route of the contract");
    }
    for (key, settings) in routes {
        assert_eq!(
            limits(settings),
            ("HashingRouteRateLimit".into(), "HashingRouteBurstLimit".into()),
            "{key:?}"
        );
    }
    // The defaults: a hashing route's ceiling under the stage's, each burst at least its rate.
    let default = |name: &str| t["Parameters"][name]["Default"].as_u64().unwrap();
    assert!(default("HashingRouteRateLimit") < default("ApiRateLimit"));
    assert!(default("ApiBurstLimit") >= default("ApiRateLimit"));
    assert!(default("HashingRouteBurstLimit") >= default("HashingRouteRateLimit"));
}

#[test]
fn the_stage_logs_each_request_as_json_with_retention() {
    let t = template();
    let log = &t["Resources"]["Api"]["Properties"]["AccessLogSettings"];
    assert_eq!(tagged(&log["DestinationArn"], "!GetAtt"), "ApiAccessLogs.Arn");
    let group = &t["Resources"]["ApiAccessLogs"];
    assert_eq!(group["Type"], "AWS::Logs::LogGroup");
    assert_eq!(tagged(&group["Properties"]["RetentionInDays"], "!Ref"), "LogRetentionDays");
    let name = tagged(&group["Properties"]["LogGroupName"], "!Sub").as_str().unwrap();
    assert!(name.starts_with("/aws/vendedlogs/"), "{name}: log delivery's own prefix");
    // With every variable given a value, the format is one JSON object holding what an
    // operator needs of each request.
    let format = log["Format"].as_str().unwrap();
    assert!(!format.contains('\n'), "one line a request");
    let mut line = format.to_owned();
    while let Some(at) = line.find("$context.") {
        let end = line[at..].find('"').map_or(line.len(), |n| at + n);
        line.replace_range(at..end, "x");
    }
    let fields: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    for (field, variable) in [
        ("requestId", "$context.requestId"),
        ("sourceIp", "$context.identity.sourceIp"),
        ("routeKey", "$context.routeKey"),
        ("httpMethod", "$context.httpMethod"),
        ("path", "$context.path"),
        ("lambdaRequestId", "$context.integration.requestId"),
        ("status", "$context.status"),
        ("responseLatency", "$context.responseLatency"),
        ("integrationError", "$context.integrationErrorMessage"),
    ] {
        assert_eq!(fields[field], "x", "{field}");
        assert!(format.contains(&format!("\"{field}\":\"{variable}\"")), "{field}: {variable}");
    }
}

#[test]
fn auths_concurrency_is_reserved_only_when_a_number_is_given() {
    let t = template();
    let parameter = &t["Parameters"]["AuthReservedConcurrency"];
    assert_eq!(parameter["Default"], "", "none by default: a new account may have none to reserve");
    // Zero would stop every login.
    assert_eq!(parameter["AllowedPattern"], "^([1-9][0-9]*)?$");
    let reserved =
        tagged(&t["Resources"]["AuthFunction"]["Properties"]["ReservedConcurrentExecutions"], "!If");
    assert_eq!(reserved[0], "AuthConcurrencyReserved");
    assert_eq!(tagged(&reserved[1], "!Ref"), "AuthReservedConcurrency");
    assert_eq!(tagged(&reserved[2], "!Ref"), "AWS::NoValue");
    let condition = tagged(&t["Conditions"]["AuthConcurrencyReserved"], "!Not");
    let equals = tagged(&condition[0], "!Equals");
    assert_eq!(
        (tagged(&equals[0], "!Ref").as_str(), equals[1].as_str()),
        (Some("AuthReservedConcurrency"), Some(""))
    );
    // No other function reserves any: they share what is left.
    for (name, resource) in t["Resources"].as_mapping().unwrap() {
        if resource["Type"] == "AWS::Serverless::Function" && name.as_str() != Some("AuthFunction") {
            assert!(resource["Properties"].get("ReservedConcurrentExecutions").is_none(), "{name:?}");
        }
    }
}

/// Lambda drops, below its application log level, every JSON line without a level: the
/// metrics' EMF lines. So its filter stays open and the functions filter their own logs.
#[test]
fn the_log_level_is_the_functions_own_so_lambda_drops_no_metrics() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["LoggingConfig"]["ApplicationLogLevel"], "TRACE");
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    let variables = &globals["Environment"]["Variables"];
    assert_eq!(tagged(&variables["RUST_LOG"], "!Ref"), "LogLevel");
    assert_eq!(tagged(&variables["METRICS_NAMESPACE"], "!Ref"), "AWS::StackName");
}

/// Each function's memory is the size the bench measured and the README's cost table justifies
/// (BENCHMARKS.md, "Memory size per function"): more for the two that run argon2id, the
/// smallest that keeps its latency for the others; the measurement has a row for each.
#[test]
fn each_functions_memory_is_a_size_the_bench_measured() {
    let t = template();
    let globals = t["Globals"]["Function"]["MemorySize"].as_u64().unwrap();
    let benchmarks = include_str!("../../../BENCHMARKS.md");
    let readme = include_str!("../../../README.md");
    let measured = [
        ("AuthFunction", "auth", "POST /v1/auth/token", 1024),
        ("UsersFunction", "users", "POST /v1/users/signup", 512),
        ("ItemsFunction", "items", "GET /v1/items", 256),
        ("DocsFunction", "docs", "GET /v1/health", 256),
    ];
    for (id, name, request, mb) in measured {
        let size = t["Resources"][id]["Properties"]["MemorySize"].as_u64().unwrap_or(globals);
        assert_eq!(size, mb, "{id}");
        let row = format!("| `{name}` | `{request}` | {mb} MB |");
        assert!(benchmarks.contains(&row), "BENCHMARKS.md measures {row}");
        assert!(
            readme.contains(&format!("| `{name}` | {mb} MB |")),
            "the README's cost table has {name} at {mb} MB"
        );
    }
    // The worker waits on DynamoDB and SES: the default.
    assert!(t["Resources"]["WorkerFunction"]["Properties"].get("MemorySize").is_none());
    assert_eq!(globals, 256);
}
