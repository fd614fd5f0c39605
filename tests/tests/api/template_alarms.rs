//! What watches the deployed API (issue 18, items 2 and 5): the alarms, to the SNS topic given
//! as a parameter; the dashboard; the canary deploys that roll back on the alarms. Each alarm
//! and graph on the stack's own namespace names a metric the code writes (an alarm on a metric
//! nobody writes never fires), and the README's runbook says what to do when each fires.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use serde_norway::Value;

use super::template::{tagged, template};

/// The HTTP functions, by their template names and the names their alarms carry.
const HTTP: [(&str, &str); 4] = [("Auth", "auth"), ("Users", "users"), ("Items", "items"), ("Docs", "docs")];

/// Every alarm, by logical id and the name after `<stack>-`.
fn expected_alarms() -> Vec<(String, String)> {
    let mut alarms = Vec::new();
    for (f, name) in HTTP {
        alarms.push((format!("{f}ErrorsAlarm"), format!("{name}-errors")));
        alarms.push((format!("{f}5xxAlarm"), format!("{name}-5xx")));
        alarms.push((format!("{f}LatencyAlarm"), format!("{name}-p99")));
    }
    for (id, name) in [
        ("WorkerErrorsAlarm", "worker-errors"),
        ("LambdaThrottlesAlarm", "lambda-throttles"),
        ("DynamoDbThrottlesAlarm", "dynamodb-throttles"),
        ("WorkerFailuresAlarm", "worker-failures"),
        ("MailGivenUpAlarm", "mail-given-up"),
        ("RefreshReuseAlarm", "refresh-reuse"),
    ] {
        alarms.push((id.to_owned(), name.to_owned()));
    }
    alarms
}

fn alarms(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(id, r)| (id.as_str().unwrap().to_owned(), &r["Properties"]))
        .collect()
}

/// The names of the metrics the code writes under the stack's namespace, all of them by
/// function (among other sets).
fn written() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = shared::metrics::TRAFFIC.iter().map(|n| (*n).to_owned()).collect();
    names.extend(shared::metrics::Event::ALL.iter().map(|e| e.name().to_owned()));
    names.extend(worker::Tally::default().metrics().iter().map(|(name, _, _)| (*name).to_owned()));
    names.insert("ColdStart".to_owned());
    names
}

#[test]
fn every_alarm_is_named_described_and_tells_the_topic_when_one_is_given() {
    let t = template();
    let found: BTreeSet<String> = alarms(&t).into_iter().map(|(id, _)| id).collect();
    let expected: BTreeSet<String> = expected_alarms().into_iter().map(|(id, _)| id).collect();
    assert_eq!(found, expected);
    for (id, name) in expected_alarms() {
        let alarm = &t["Resources"][id.as_str()]["Properties"];
        assert_eq!(
            tagged(&alarm["AlarmName"], "!Sub").as_str(),
            Some(format!("${{AWS::StackName}}-{name}").as_str())
        );
        let description = match &alarm["AlarmDescription"] {
            Value::String(s) => s.clone(),
            tagged_sub => tagged(tagged_sub, "!Sub").as_str().unwrap().to_owned(),
        };
        assert!(description.len() > 40, "{id}: {description}");
        for actions in ["AlarmActions", "OKActions"] {
            let choice = tagged(&alarm[actions], "!If");
            assert_eq!(choice[0], "AlarmTopicGiven", "{id}");
            assert_eq!(tagged(&choice[1][0], "!Ref"), "AlarmTopicArn", "{id}");
            assert_eq!(tagged(&choice[2], "!Ref"), "AWS::NoValue", "{id}");
        }
        assert_eq!(alarm["TreatMissingData"], "notBreaching", "{id}: no traffic is no failure");
    }
    let topic = &t["Parameters"]["AlarmTopicArn"];
    assert_eq!(topic["Default"], "");
    let pattern = regex_lite::Regex::new(topic["AllowedPattern"].as_str().unwrap()).unwrap();
    assert!(pattern.is_match("arn:aws:sns:eu-west-1:123456789012:on-call"));
    assert!(pattern.is_match(""));
    assert!(!pattern.is_match("arn:aws:sqs:eu-west-1:123456789012:on-call"));
}

/// Every alarm has its entry in the README's runbook, under its name.
#[test]
fn the_runbook_says_what_to_do_when_each_alarm_fires() {
    let readme = include_str!("../../../README.md");
    let runbook = &readme[readme.find("### When an alarm fires").expect("the runbook's alarms")..];
    for (id, name) in expected_alarms() {
        assert!(runbook.contains(&format!("`<stack>-{name}`")), "{id}: `<stack>-{name}` in the runbook");
    }
}

/// A metric an alarm reads: its namespace, name and dimensions (name, value).
type Read = (Value, String, Vec<(String, Value)>);

/// The metric an alarm reads, for a plain alarm, or each metric of a metric-math one.
fn metrics_of(alarm: &Value) -> Vec<Read> {
    let dims = |d: &Value| -> Vec<(String, Value)> {
        d.as_sequence()
            .map(|s| s.iter().map(|d| (d["Name"].as_str().unwrap().to_owned(), d["Value"].clone())).collect())
            .unwrap_or_default()
    };
    match alarm["Metrics"].as_sequence() {
        Some(metrics) => metrics
            .iter()
            .filter_map(|m| m.get("MetricStat"))
            .map(|s| {
                let m = &s["Metric"];
                (m["Namespace"].clone(), m["MetricName"].as_str().unwrap().to_owned(), dims(&m["Dimensions"]))
            })
            .collect(),
        None => vec![(
            alarm["Namespace"].clone(),
            alarm["MetricName"].as_str().unwrap().to_owned(),
            dims(&alarm["Dimensions"]),
        )],
    }
}

fn is_stack_namespace(namespace: &Value) -> bool {
    matches!(namespace, Value::Tagged(t) if t.tag == "!Ref" && t.value == "AWS::StackName")
}

fn function_ref(value: &Value) -> String {
    tagged(value, "!Ref").as_str().unwrap().to_owned()
}

#[test]
fn each_function_has_its_own_errors_5xx_and_latency_alarms() {
    let t = template();
    let resources = &t["Resources"];
    for (f, _) in HTTP {
        let function = format!("{f}Function");
        let errors = metrics_of(&resources[format!("{f}ErrorsAlarm").as_str()]["Properties"]);
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].0.as_str(), errors[0].1.as_str()), (Some("AWS/Lambda"), "Errors"));
        assert_eq!(errors[0].2.len(), 1, "by function name alone: no alias, no version");
        assert_eq!(function_ref(&errors[0].2[0].1), function);

        let rate = &resources[format!("{f}5xxAlarm").as_str()]["Properties"];
        let read = metrics_of(rate);
        let names: BTreeSet<&str> = read.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(names, BTreeSet::from(["Status5xx", "Requests"]));
        for (namespace, _, dims) in &read {
            assert!(is_stack_namespace(namespace));
            assert_eq!((dims[0].0.as_str(), function_ref(&dims[0].1)), ("FunctionName", function.clone()));
        }
        assert_eq!(tagged(&rate["Threshold"], "!Ref"), "Alarm5xxPercent");

        let latency = &resources[format!("{f}LatencyAlarm").as_str()]["Properties"];
        assert_eq!(
            (latency["MetricName"].as_str(), latency["ExtendedStatistic"].as_str()),
            (Some("Duration"), Some("p99"))
        );
        assert_eq!(function_ref(&latency["Dimensions"][0]["Value"]), function);
        let hashing = matches!(f, "Auth" | "Users");
        let threshold = if hashing { "HashingLatencyP99AlarmMs" } else { "LatencyP99AlarmMs" };
        assert_eq!(tagged(&latency["Threshold"], "!Ref"), threshold, "{f}: argon2id or not");
    }
    let worker = metrics_of(&resources["WorkerErrorsAlarm"]["Properties"]);
    assert_eq!(function_ref(&worker[0].2[0].1), "WorkerFunction");
    // Throttles of every function, and throttle events of the table and each of its indexes.
    let throttled: BTreeSet<String> = metrics_of(&resources["LambdaThrottlesAlarm"]["Properties"])
        .iter()
        .map(|(_, name, dims)| format!("{name} {}", function_ref(&dims[0].1)))
        .collect();
    let functions: BTreeSet<String> = ["Auth", "Users", "Items", "Docs", "Worker"]
        .iter()
        .map(|f| format!("Throttles {f}Function"))
        .collect();
    assert_eq!(throttled, functions);
    let table = metrics_of(&resources["DynamoDbThrottlesAlarm"]["Properties"]);
    let indexes = t["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"].as_sequence().unwrap();
    assert_eq!(table.len(), 2 * (1 + indexes.len()), "reads and writes of the table and each index");
    for index in indexes {
        let name = &index["IndexName"];
        assert!(
            table.iter().any(|(_, _, d)| d.iter().any(|(n, v)| n == "GlobalSecondaryIndexName" && v == name))
        );
    }
    let queue = &resources["WorkerFailuresAlarm"]["Properties"];
    assert_eq!(tagged(&queue["Dimensions"][0]["Value"], "!GetAtt"), "WorkerFailures.QueueName");
}

#[test]
fn alarms_and_the_dashboard_watch_only_metrics_the_code_writes() {
    let t = template();
    let written = written();
    let mut watched = BTreeSet::new();
    for (id, alarm) in alarms(&t) {
        for (namespace, name, dims) in metrics_of(alarm) {
            if !is_stack_namespace(&namespace) {
                continue;
            }
            assert!(written.contains(&name), "{id} watches {name}, which no function writes");
            let set: Vec<&str> = dims.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(set, ["FunctionName"], "{id}: a dimension set the lines carry");
            watched.insert(name);
        }
    }
    // Each by a function that writes it.
    for (id, alarm) in alarms(&t) {
        for (namespace, name, dims) in metrics_of(alarm) {
            if is_stack_namespace(&namespace) {
                let function = function_ref(&dims[0].1);
                assert!(writers(&name).contains(&function.as_str()), "{id}: {function} writes no {name}");
            }
        }
    }

    let dashboard = dashboard(&t);
    let mut graphed = BTreeSet::new();
    for widget in dashboard["widgets"].as_array().unwrap().iter().filter(|w| w["type"] == "metric") {
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            let metric = metric.as_array().unwrap();
            if metric[0] == "${AWS::StackName}" {
                let name = metric[1].as_str().unwrap();
                assert!(written.contains(name), "the dashboard graphs {name}, which no function writes");
                assert_eq!(metric[2], "FunctionName");
                let function = metric[3].as_str().unwrap().trim_start_matches("${").trim_end_matches('}');
                assert!(
                    writers(name).contains(&function),
                    "the dashboard graphs {name} of {function}, which writes none"
                );
                graphed.insert(name.to_owned());
            }
        }
    }
    // Everything the code counts is on the dashboard, but the traffic of each status class
    // (4xx and 5xx are; 2xx is what is left of the requests) and the latency (Lambda's p99 is).
    let not_graphed: BTreeSet<&str> =
        written.iter().map(String::as_str).filter(|n| !graphed.contains(*n)).collect();
    assert_eq!(not_graphed, BTreeSet::from(["Latency", "PurgedRecords", "Status2xx"]));
}

/// The functions that write `metric`: the worker its own counts; auth the logins and refresh
/// reuse; users and items (the routes with `Idempotency-Key`) replays; every HTTP function its
/// traffic, cold starts and 503s (the worker a cold start too).
fn writers(metric: &str) -> Vec<&'static str> {
    let worker = worker::Tally::default().metrics().iter().any(|(name, _, _)| *name == metric);
    match metric {
        _ if worker => vec!["WorkerFunction"],
        "LoginOk" | "LoginFailed" | "LoginThrottled" | "RefreshReuse" => vec!["AuthFunction"],
        "IdempotentReplay" => vec!["UsersFunction", "ItemsFunction"],
        "ColdStart" => {
            vec!["AuthFunction", "UsersFunction", "ItemsFunction", "DocsFunction", "WorkerFunction"]
        }
        _ => vec!["AuthFunction", "UsersFunction", "ItemsFunction", "DocsFunction"],
    }
}

/// The dashboard's body, every `${...}` of its `!Sub` a resource, attribute or pseudo parameter
/// of the template, and the rest JSON.
fn dashboard(t: &Value) -> serde_json::Value {
    let board = &t["Resources"]["Dashboard"]["Properties"];
    assert_eq!(
        tagged(&board["DashboardName"], "!Sub"),
        "${AWS::StackName}-${AWS::Region}",
        "names are the account's"
    );
    let body = tagged(&board["DashboardBody"], "!Sub").as_str().unwrap();
    let mut rest = body;
    while let Some(at) = rest.find("${") {
        let end = rest[at..].find('}').unwrap() + at;
        let name = &rest[at + 2..end];
        let resource = name.split('.').next().unwrap();
        assert!(
            name.starts_with("AWS::") || t["Resources"].get(resource).is_some(),
            "${{{name}}} is not the template's"
        );
        rest = &rest[end..];
    }
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: the dashboard's body is not JSON"))
}

#[test]
fn the_dashboard_shows_every_alarm_and_the_traffic() {
    let t = template();
    let dashboard = dashboard(&t);
    let widgets = dashboard["widgets"].as_array().unwrap();
    let shown: BTreeSet<String> = widgets
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap())
        .map(|a| a.as_str().unwrap().trim_start_matches("${").trim_end_matches(".Arn}").to_owned())
        .collect();
    let expected: BTreeSet<String> = expected_alarms().into_iter().map(|(id, _)| id).collect();
    assert_eq!(shown, expected);
    for widget in widgets.iter().filter(|w| w["type"] == "metric") {
        assert_eq!(widget["properties"]["region"], "${AWS::Region}");
    }
    let titles: Vec<&str> = widgets.iter().filter_map(|w| w["properties"]["title"].as_str()).collect();
    assert!(titles.iter().any(|t| t.starts_with("Requests")), "{titles:?}");
    // Laid out on CloudWatch's grid of 24 columns, no two widgets on the same cell.
    let mut cells = BTreeSet::new();
    for w in widgets {
        let (x, y, width, height) = (
            w["x"].as_u64().unwrap(),
            w["y"].as_u64().unwrap(),
            w["width"].as_u64().unwrap(),
            w["height"].as_u64().unwrap(),
        );
        assert!(x + width <= 24);
        for cx in x..x + width {
            for cy in y..y + height {
                assert!(cells.insert((cx, cy)), "two widgets at {cx},{cy}");
            }
        }
    }
}

/// Each HTTP function deploys as a version behind the alias `live`: a canary in prod that
/// CodeDeploy rolls back on that function's errors or 5xx alarm, all at once in dev. The
/// alarms a deployment waits on watch the function by name, never the alias (which waits on the
/// deployment) or the API (whose integrations call the alias): either would be a circle.
#[test]
fn the_http_functions_deploy_as_a_canary_in_prod_that_rolls_back_on_their_alarms() {
    let t = template();
    for (f, _) in HTTP {
        let function = &t["Resources"][format!("{f}Function").as_str()]["Properties"];
        assert_eq!(function["AutoPublishAlias"], "live", "{f}");
        let preference = &function["DeploymentPreference"];
        let kind = tagged(&preference["Type"], "!If");
        assert_eq!(
            (kind[0].as_str(), kind[1].as_str(), kind[2].as_str()),
            (Some("Production"), Some("Canary10Percent5Minutes"), Some("AllAtOnce"))
        );
        // In prod only: in dev no alarm holds a deploy (a fix) up while it fires.
        let alarms = tagged(&preference["Alarms"], "!If");
        assert_eq!(
            (alarms[0].as_str(), tagged(&alarms[2], "!Ref").as_str()),
            (Some("Production"), Some("AWS::NoValue"))
        );
        let watched: Vec<String> = alarms[1].as_sequence().unwrap().iter().map(function_ref).collect();
        assert_eq!(watched, [format!("{f}ErrorsAlarm"), format!("{f}5xxAlarm")]);
        for alarm in &watched {
            let text = serde_norway::to_string(&t["Resources"][alarm.as_str()]).unwrap();
            for circle in ["Alias", "Version", ":live", "!Ref Api", "${Api}"] {
                assert!(!text.contains(circle), "{alarm} names {circle}");
            }
        }
    }
    // The worker is invoked by the stream and the schedule, not through an alias: it deploys at
    // once. Its work is retried (a failed stream record, the sweep), and its errors and
    // on-failure queue alarms show a bad version; a tenth of a few batches in 5 minutes would
    // say little.
    let worker = &t["Resources"]["WorkerFunction"]["Properties"];
    assert!(worker.get("AutoPublishAlias").is_none() && worker.get("DeploymentPreference").is_none());
    assert_eq!(
        t["Conditions"]["Production"],
        serde_norway::from_str::<Value>("!Equals [!Ref Environment, prod]").unwrap()
    );
}

/// In prod the table cannot be deleted, and the table and the signing key outlive the stack.
#[test]
fn prod_keeps_its_table_and_every_stack_keeps_its_keys() {
    let t = template();
    let table = &t["Resources"]["Table"];
    let protection = tagged(&table["Properties"]["DeletionProtectionEnabled"], "!If");
    assert_eq!(
        (protection[0].as_str(), protection[1].as_bool(), protection[2].as_bool()),
        (Some("Production"), Some(true), Some(false))
    );
    for id in ["Table", "SigningKey"] {
        let resource = &t["Resources"][id];
        assert_eq!(
            (resource["DeletionPolicy"].as_str(), resource["UpdateReplacePolicy"].as_str()),
            (Some("Retain"), Some("Retain")),
            "{id}"
        );
    }
}

/// A 5xx alarm reads a rate that two transient 503s cannot make (fewer than 3 in a minute count
/// as none) and that a quiet minute cannot inflate (it counts as at least 10 requests); the four
/// functions' alarms read the same.
#[test]
fn the_5xx_rate_ignores_a_couple_of_503s_and_quiet_minutes() {
    let t = template();
    for (f, _) in HTTP {
        let alarm = &t["Resources"][format!("{f}5xxAlarm").as_str()]["Properties"];
        let rate = alarm["Metrics"].as_sequence().unwrap().iter().find(|m| m["Id"] == "rate").unwrap();
        assert_eq!(
            rate["Expression"], "100 * IF(failed >= 3, failed, 0) / IF(requests >= 10, requests, 10)",
            "{f}"
        );
        assert_eq!(rate["ReturnData"], true);
        assert_eq!(
            (alarm["EvaluationPeriods"].as_u64(), alarm["DatapointsToAlarm"].as_u64()),
            (Some(3), Some(2))
        );
    }
}

/// SAM publishes a new version (the one the alias serves) only when a function's code or its
/// environment as written changes; in `Globals` a parameter is written as a `Ref`, the same
/// whatever its value. Each aliased function's `DEPLOYED_PARAMETERS` names every parameter the
/// environment takes, so a deploy that changes only one still reaches the alias
/// (scripts/scan-template checks the versions themselves).
#[test]
fn every_parameter_the_environment_takes_publishes_a_new_version() {
    let t = template();
    let globals = t["Globals"]["Function"]["Environment"]["Variables"].as_mapping().unwrap();
    let parameters: BTreeSet<String> = globals
        .values()
        .filter_map(|v| match v {
            Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str().map(str::to_owned),
            _ => None,
        })
        .filter(|name| t["Parameters"].get(name.as_str()).is_some())
        .collect();
    assert!(parameters.len() > 10, "{parameters:?}");
    for (f, _) in HTTP {
        let function = &t["Resources"][format!("{f}Function").as_str()]["Properties"];
        let deployed =
            tagged(&function["Environment"]["Variables"]["DEPLOYED_PARAMETERS"], "!Sub").as_str().unwrap();
        let named: BTreeSet<String> = deployed
            .split(' ')
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap();
                assert_eq!(value, format!("${{{name}}}"), "{f}: {pair}");
                name.to_owned()
            })
            .collect();
        assert_eq!(named, parameters, "{f}");
    }
}
