//! `template.yaml` and the code agree: the table's keys, index and TTL are the ones the code
//! creates locally, and every route of the HTTP API reaches the function that serves it, with
//! exactly the methods that function answers on that path.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use api_tests::{TestApp, api_routes};
use axum::http::{Method, StatusCode};
use serde_norway::Value;
use shared::repo::keys::{INDEXES, TABLE_KEYS, TTL};

pub(crate) fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("read template.yaml");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

fn keys(schema: &Value) -> Vec<(String, String)> {
    schema
        .as_sequence()
        .expect("key schema")
        .iter()
        .map(|k| (k["AttributeName"].as_str().unwrap().to_owned(), k["KeyType"].as_str().unwrap().to_owned()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[test]
fn the_table_in_the_template_is_the_one_the_code_creates() {
    let t = template();
    let table = &t["Resources"]["Table"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(keys(&table["KeySchema"]), owned(&TABLE_KEYS));
    let indexes = table["GlobalSecondaryIndexes"].as_sequence().expect("indexes");
    assert_eq!(indexes.len(), INDEXES.len());
    for (index, (name, schema, projection)) in indexes.iter().zip(INDEXES) {
        assert_eq!(index["IndexName"], name);
        assert_eq!(keys(&index["KeySchema"]), owned(&schema));
        assert_eq!(index["Projection"]["ProjectionType"], projection.as_str());
    }
    // The users listing's index copies no attribute of a user (a password hash least of all).
    let users_index = indexes.iter().find(|i| i["IndexName"] == shared::repo::keys::GSI2).unwrap();
    assert_eq!(users_index["Projection"]["ProjectionType"], "KEYS_ONLY");
    assert!(users_index["Projection"]["NonKeyAttributes"].is_null());
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"], TTL);
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
}

/// (function binary, path) of every HttpApi event; every event must route `ANY`.
fn template_routes() -> BTreeSet<(String, String)> {
    let t = template();
    let mut out = BTreeSet::new();
    for (_, resource) in t["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned();
        assert_eq!(resource["Metadata"]["BuildMethod"], "rust-cargolambda");
        if binary == "worker" {
            // The stream worker has no route (its events are tested in `the_worker_...`).
            continue;
        }
        for (_, event) in resource["Properties"]["Events"].as_mapping().unwrap() {
            assert_eq!(event["Type"], "HttpApi");
            // ANY: the router, not API Gateway, answers unserved methods (405 with Allow).
            assert_eq!(event["Properties"]["Method"], "ANY", "{binary}");
            out.insert((binary.clone(), event["Properties"]["Path"].as_str().unwrap().to_owned()));
        }
    }
    out
}

#[test]
fn the_template_routes_every_path_of_api_md_to_its_function_and_unknown_paths_to_a_router() {
    let mut expected: BTreeSet<(String, String)> = api_routes().into_iter().map(|(f, p, _)| (f, p)).collect();
    expected.insert(("docs".to_owned(), "$default".to_owned()));
    assert_eq!(template_routes(), expected);
}

#[tokio::test]
async fn every_function_serves_exactly_the_methods_of_api_md() {
    let app = TestApp::memory();
    let mut count = 0;
    for (function, path, methods) in api_routes() {
        let concrete: String = path
            .split('/')
            .map(|segment| match segment {
                "{proxy+}" => "swagger-ui.css".to_owned(),
                s if s.starts_with('{') => uuid::Uuid::now_v7().to_string(),
                s => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let prefix = if function == "docs" { "/".to_owned() } else { format!("/v1/{function}") };
        let published = function == "auth" && concrete.starts_with("/.well-known/");
        assert!(concrete.starts_with(&prefix) || published, "{function} serves {path}");
        for method in &methods {
            let response = app.call(Method::from_bytes(method.as_bytes()).unwrap(), &concrete, None).await;
            // Unauthenticated and bodiless, a served route answers 400/401/415, never 404/405.
            assert!(
                ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&response.status),
                "{method} {path}: {}",
                response.status
            );
            count += 1;
        }
        // The 405 of an unserved method names exactly these methods (and HEAD, which axum
        // answers wherever GET is).
        let probe = app.call(Method::PUT, &concrete, None).await;
        assert_eq!(probe.status, StatusCode::METHOD_NOT_ALLOWED, "PUT {path}");
        let allow: BTreeSet<&str> =
            probe.header("allow").unwrap().split(',').map(str::trim).filter(|m| *m != "HEAD").collect();
        assert_eq!(allow, methods.iter().map(String::as_str).collect(), "{path}");
    }
    // Every route and method of the template and the document: one sample event each.
    assert_eq!(count, api_tests::fixtures::all_events().len(), "every route of the contract");
    let unknown = app.call(Method::GET, "/v1/nothing/here", None).await;
    assert_eq!((unknown.status, unknown.detail()), (StatusCode::NOT_FOUND, serde_json::json!("Not Found")));
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

pub(crate) fn tagged<'a>(v: &'a Value, tag: &str) -> &'a Value {
    match v {
        Value::Tagged(t) if t.tag == tag => &t.value,
        other => panic!("expected {tag}, found {other:?}"),
    }
}

#[test]
fn cors_on_the_http_api_is_the_local_servers_with_origins_from_a_parameter() {
    let t = template();
    let cors = tagged(&t["Resources"]["Api"]["Properties"]["CorsConfiguration"], "!If");
    assert_eq!(cors[0], "CorsEnabled");
    assert_eq!(tagged(&cors[2], "!Ref"), "AWS::NoValue", "no origins, no CORS");
    let on = &cors[1];
    assert_eq!(strings(&on["AllowMethods"]), catalog::cors::CORS_ALLOW_METHODS);
    assert_eq!(strings(&on["AllowHeaders"]), catalog::cors::CORS_ALLOW_HEADERS);
    assert_eq!(strings(&on["ExposeHeaders"]), catalog::cors::CORS_EXPOSE_HEADERS);
    assert_eq!(on["MaxAge"].as_u64(), Some(catalog::cors::CORS_MAX_AGE_SECS));
    assert!(on.get("AllowCredentials").is_none(), "bearer tokens, not cookies");
    let split = tagged(&on["AllowOrigins"], "!Split");
    assert_eq!(split[0], ",");
    assert_eq!(tagged(&split[1], "!Ref"), "CorsAllowedOrigins");
    assert_eq!(t["Parameters"]["CorsAllowedOrigins"]["Default"], "");
    // !Split does not trim as the local server does: spaces are refused at deploy time.
    assert_eq!(t["Parameters"]["CorsAllowedOrigins"]["AllowedPattern"], r"^[^\s]*$");
}

#[test]
fn functions_are_traced_logged_with_retention_and_time_out_after_dynamodb_gives_up() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Tracing"], "Active");
    // One architecture for every function, a parameter so that sam local runs the machine's own
    // (scripts/sam-local); arm64 deploys unless told otherwise.
    assert_eq!(globals["Architectures"].as_sequence().unwrap().len(), 1);
    assert_eq!(tagged(&globals["Architectures"][0], "!Ref"), "Architecture");
    assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64");
    assert_eq!(
        t["Parameters"]["Architecture"]["AllowedValues"],
        serde_norway::from_str::<serde_norway::Value>("[arm64, x86_64]").unwrap()
    );
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    let timeout = globals["Timeout"].as_u64().unwrap();
    let dynamodb = shared::state::DYNAMODB_OPERATION_TIMEOUT.as_secs();
    assert!(timeout >= dynamodb + 3, "timeout {timeout}s leaves room after DynamoDB's {dynamodb}s");
    assert!((128..=1024).contains(&globals["MemorySize"].as_u64().unwrap()));
    let mut functions = 0;
    for (name, resource) in t["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        functions += 1;
        let group = tagged(&resource["Properties"]["LoggingConfig"]["LogGroup"], "!Ref").as_str().unwrap();
        let logs = &t["Resources"][group];
        assert_eq!(logs["Type"], "AWS::Logs::LogGroup", "{name:?}");
        assert_eq!(tagged(&logs["Properties"]["RetentionInDays"], "!Ref"), "LogRetentionDays");
    }
    // As many as there are function crates: none was skipped.
    let crates = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../functions"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("Cargo.toml").is_file())
        .count();
    assert_eq!(functions, crates);
    // The docs function reads one key of the table, never written (its health check), and
    // nothing else (iam.rs proves it is what the function uses).
    let docs = &t["Resources"]["DocsFunction"]["Properties"]["Policies"];
    let statements = docs[0]["Statement"].as_sequence().unwrap();
    assert_eq!((docs.as_sequence().unwrap().len(), statements.len()), (1, 1));
    assert_eq!(statements[0]["Action"].as_sequence().unwrap(), &["dynamodb:GetItem"]);
    let keys = &statements[0]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
    assert_eq!(keys.as_sequence().unwrap(), &[shared::repo::HEALTH_KEY]);
}

/// Only the worker may send mail, only from `MailFrom` (SES's `ses:FromAddress`), only through
/// its identity (the address's or its domain's) and the configuration set if one is named; and
/// only once `MailFrom` is set. Its configuration reaches the worker alone.
#[test]
fn only_the_worker_sends_mail_and_only_as_mail_from() {
    let t = template();
    for (name, resource) in t["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" || name == "WorkerFunction" {
            continue;
        }
        let text = serde_norway::to_string(&resource["Properties"]).unwrap();
        assert!(!text.contains("ses:") && !text.contains("MAIL_FROM"), "{name:?} may send no mail");
    }
    let worker = &t["Resources"]["WorkerFunction"]["Properties"];
    let conditional = worker["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|p| match p {
            Value::Tagged(tagged) if tagged.tag == "!If" => Some(tagged.value.clone()),
            _ => None,
        })
        .expect("the SES policy, under a condition");
    assert_eq!(conditional[0], "MailEnabled");
    assert_eq!(tagged(&conditional[2], "!Ref"), "AWS::NoValue");
    let statements = conditional[1]["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(strings(&statement["Action"]), ["ses:SendEmail"], "SES v2's SendEmail, raw content included");
    assert_eq!(tagged(&statement["Condition"]["StringEquals"]["ses:FromAddress"], "!Ref"), "MailFrom");
    let resources = serde_norway::to_string(&statement["Resource"]).unwrap();
    assert!(
        resources.contains(":identity/${MailFrom}") && resources.contains(":identity/${Domain}"),
        "{resources}"
    );
    assert!(resources.contains(":configuration-set/${MailConfigurationSet}"), "{resources}");
    assert!(!resources.contains('*'), "no wildcard identity: {resources}");
    let condition = serde_norway::to_string(&t["Conditions"]["MailEnabled"]).unwrap();
    assert!(condition.contains("MailFrom"), "{condition}");
    let variables = &worker["Environment"]["Variables"];
    for (variable, parameter) in [
        ("APP_URL", "AppUrl"),
        ("PRODUCT_NAME", "ProductName"),
        ("MAIL_FROM", "MailFrom"),
        ("MAIL_CONFIGURATION_SET", "MailConfigurationSet"),
    ] {
        assert_eq!(tagged(&variables[variable], "!Ref"), parameter, "{variable}");
    }
    assert_eq!(variables["SES_ENDPOINT"], "", "empty in AWS");
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(tagged(&globals["REQUIRE_EMAIL_VERIFICATION"], "!Ref"), "RequireEmailVerification");
}
