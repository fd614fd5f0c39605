//! `template.yaml` and issue 17's keys: no function's environment holds key material (or a way
//! to take a key from it), only auth may sign, with the stack's KMS keys alone, no function may
//! write the key ring, and API Gateway's optional JWT authorizer guards exactly the protected
//! routes.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use serde_norway::Value;

use super::template::template;

/// The functions of the template: (logical id, binary, resource).
fn functions(t: &Value) -> Vec<(String, String, Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned();
            (name.as_str().unwrap().to_owned(), binary, r.clone())
        })
        .collect()
}

fn text(value: &Value) -> String {
    serde_norway::to_string(value).unwrap()
}

/// Whether an IAM `StringLike` pattern (`*` and `?`) matches `value`.
fn like(pattern: &str, value: &str) -> bool {
    match (pattern.chars().next(), value.chars().next()) {
        (None, None) => true,
        (Some('*'), _) => like(&pattern[1..], value) || (!value.is_empty() && like(pattern, &value[1..])),
        (Some(p), Some(v)) if p == '?' || p == v => like(&pattern[p.len_utf8()..], &value[v.len_utf8()..]),
        _ => false,
    }
}

#[test]
fn no_environment_holds_key_material_and_only_auth_may_sign_and_no_function_write_the_key_ring() {
    let t = template();
    let globals = text(&t["Globals"]["Function"]["Environment"]);
    // Key material, a secret resolved into the environment, and the escape hatches that take a
    // key from the environment (sam local's) or a public key from anywhere (a stand-in's).
    let material = [
        "resolve:secretsmanager",
        "resolve:ssm",
        "PRIVATE KEY",
        "pem:",
        "JWT_SECRET",
        "AWS_SAM_LOCAL",
        "KEYS_ENDPOINT",
    ];
    for marker in material.iter().chain(&["SIGNING_KEY"]) {
        assert!(!globals.contains(marker), "every function's environment holds {marker}");
    }
    assert!(t["Resources"].as_mapping().unwrap().values().all(|r| !text(&r["Type"]).contains("AWS::IAM::")));
    for (name, binary, function) in functions(&t) {
        let env = &function["Properties"]["Environment"]["Variables"];
        for marker in material {
            assert!(!text(env).contains(marker), "{name}'s environment holds {marker}");
        }
        let signing_key = text(&env["SIGNING_KEY"]);
        if binary == "auth" {
            // Which key, never the key: the ARN of the KMS key.
            assert_eq!(signing_key.trim(), "!Sub kms:${SigningKey.Arn}", "{name}");
        } else {
            assert_eq!(signing_key.trim(), "null", "{name} names a signing key");
        }
        let policies = function["Properties"]["Policies"].as_sequence().cloned().unwrap_or_default();
        for policy in &policies {
            // Only inline statements, read below: a managed policy or a SAM policy template
            // could grant anything. (An `!If` is the worker's SES statement: no table in it.)
            match policy {
                Value::Mapping(_) => assert!(policy["Statement"].is_sequence(), "{name}: {}", text(policy)),
                Value::Tagged(_) => {
                    assert!(!text(policy).contains("dynamodb") && !text(policy).contains("kms"), "{name}")
                }
                other => panic!("{name}: a policy that is not inline: {}", text(other)),
            }
        }
        let statements =
            policies.iter().flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default());
        for statement in statements {
            let actions: Vec<&str> = match &statement["Action"] {
                Value::Sequence(actions) => actions.iter().map(|a| a.as_str().unwrap()).collect(),
                action => vec![action.as_str().unwrap()],
            };
            assert!(actions.iter().all(|a| !a.contains('*')), "{name}: {actions:?}");
            assert!(!actions.iter().any(|a| a.starts_with("secretsmanager:")), "{name}: {actions:?}");
            if actions.contains(&"kms:Sign") {
                assert_eq!(binary, "auth", "{name} may sign tokens");
                let only = &statement["Condition"]["StringEquals"];
                assert_eq!(
                    text(&only["aws:ResourceTag/signing-key-of"]).trim(),
                    "!Ref AWS::StackName",
                    "{name}"
                );
                assert_eq!(only["kms:SigningAlgorithm"], "RSASSA_PKCS1_V1_5_SHA_256", "{name}");
                assert_eq!(only["kms:MessageType"], "RAW", "{name}");
            }
            assert!(
                actions.iter().all(|a| !a.starts_with("kms:") || binary == "auth"),
                "{name}: {actions:?}"
            );
            let reads = [
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:BatchGetItem",
                "dynamodb:ConditionCheckItem",
            ];
            let writes = actions.iter().any(|a| a.starts_with("dynamodb:") && !reads.contains(a));
            if !writes {
                continue;
            }
            let leading = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
            let patterns: Vec<&str> = leading
                .as_sequence()
                .map(|p| p.iter().map(|p| p.as_str().unwrap()).collect())
                .unwrap_or_default();
            assert!(!patterns.is_empty(), "{name} writes without LeadingKeys: {actions:?}");
            // Whoever writes the ring decides which keys verify: no function may.
            assert!(!patterns.iter().any(|p| like(p, "KEYS")), "{name} may write the key ring: {patterns:?}");
        }
    }
    // The key: RSA in KMS, kept on stack deletion, and signing for auth's role alone.
    let key = &t["Resources"]["SigningKey"];
    assert_eq!(
        (key["Type"].as_str(), key["DeletionPolicy"].as_str()),
        (Some("AWS::KMS::Key"), Some("Retain"))
    );
    assert_eq!(
        (key["Properties"]["KeySpec"].as_str(), key["Properties"]["KeyUsage"].as_str()),
        (Some("RSA_2048"), Some("SIGN_VERIFY"))
    );
    let deny = key["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["Effect"] == "Deny" && s["Action"] == "kms:Sign")
        .expect("a statement denying kms:Sign");
    assert_eq!(deny["Principal"], "*");
    assert_eq!(
        text(&deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]).trim(),
        "!GetAtt AuthFunctionRole.Arn"
    );
    assert!(
        t["Resources"].as_mapping().unwrap().values().all(|r| r["Type"] != "AWS::SecretsManager::Secret")
    );
    assert!(t["Parameters"].as_mapping().unwrap().keys().all(|k| !k.as_str().unwrap().contains("Secret")));
}

#[test]
fn api_gateways_jwt_authorizer_is_optional_and_guards_exactly_the_protected_routes() {
    let t = template();
    assert_eq!(t["Parameters"]["GatewayJwtAuthorizer"]["Default"], "off");
    let transforms = text(&t["Transform"]);
    assert!(transforms.find("AWS::LanguageExtensions") < transforms.find("AWS::Serverless"), "{transforms}");
    let auth = text(&t["Resources"]["Api"]["Properties"]["Auth"]);
    for part in ["GatewayJwtAuthorizerOn", "issuer: !Ref PublicBaseUrl", "!Ref JwtAudience", "AWS::NoValue"] {
        assert!(auth.contains(part), "{part}: {auth}");
    }
    let protected: BTreeSet<&str> = [
        "/v1/users/me",
        "/v1/users/me/password",
        "/v1/users/me/verification-email",
        "/v1/users",
        "/v1/users/{user_id}",
        "/v1/items",
        "/v1/items/{item_id}",
    ]
    .into();
    for (_, _, function) in functions(&t) {
        for (_, event) in function["Properties"]["Events"].as_mapping().into_iter().flatten() {
            let Some(path) = event["Properties"]["Path"].as_str() else { continue };
            let guarded = text(&event["Properties"]["Auth"]);
            if protected.contains(path) {
                assert!(
                    guarded.contains("GatewayJwtAuthorizerOn") && guarded.contains("JwtAuthorizer"),
                    "{path}"
                );
            } else {
                assert_eq!(guarded.trim(), "null", "{path} is public");
            }
        }
    }
}
