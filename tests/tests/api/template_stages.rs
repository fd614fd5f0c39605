//! The environments of `sam deploy` (issue 18, item 5): `samconfig.toml`'s `dev` and `prod`,
//! each value one the template takes (a wrong value fails a deploy only once it has begun), and
//! prod's own: deletion protection, long log retention, the registration settings said
//! explicitly, a topic for the alarms. The template's rules refuse a deploy that could not work.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_norway::Value;

use super::template::{tagged, template};

/// The value samconfig.toml gives what a person must choose before a first deploy.
const PLACEHOLDER: &str = "REPLACE-ME";

fn samconfig() -> toml::Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../samconfig.toml");
    std::fs::read_to_string(path).unwrap().parse().unwrap()
}

/// An environment's deploy settings, and its parameter overrides by name.
fn environment(config: &toml::Table, name: &str) -> (toml::Table, BTreeMap<String, String>) {
    let deploy = config[name]["deploy"]["parameters"].as_table().unwrap().clone();
    let overrides = deploy["parameter_overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let (name, value) = o.as_str().unwrap().split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect();
    (deploy, overrides)
}

/// Whether the template's parameter `name` takes `value`, as CloudFormation checks it.
fn takes(parameter: &Value, value: &str) -> Result<(), String> {
    if let Some(allowed) = parameter["AllowedValues"].as_sequence() {
        let allowed: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => serde_norway::to_string(other).unwrap().trim().to_owned(),
            })
            .collect();
        if !allowed.iter().any(|a| a == value) {
            return Err(format!("{value} is not one of {allowed:?}"));
        }
    }
    if let Some(pattern) = parameter["AllowedPattern"].as_str()
        && !regex_lite::Regex::new(pattern).unwrap().is_match(value)
    {
        return Err(format!("{value} does not match {pattern}"));
    }
    if parameter["Type"] == "Number" {
        let n: f64 = value.parse().map_err(|_| format!("{value} is not a number"))?;
        let bound = |key: &str| parameter[key].as_f64();
        if bound("MinValue").is_some_and(|min| n < min) || bound("MaxValue").is_some_and(|max| n > max) {
            return Err(format!("{value} is out of range"));
        }
    }
    if let Some(min) = parameter["MinLength"].as_u64()
        && (value.len() as u64) < min
    {
        return Err(format!("{value} is too short"));
    }
    Ok(())
}

#[test]
fn dev_and_prod_deploy_values_the_template_takes_to_stacks_of_their_own() {
    let t = template();
    let config = samconfig();
    assert_eq!(config["version"].as_float(), Some(0.1));
    let mut stacks = Vec::new();
    for name in ["dev", "prod"] {
        let (deploy, overrides) = environment(&config, name);
        stacks.push(deploy["stack_name"].as_str().unwrap().to_owned());
        assert_eq!(overrides["Environment"], name);
        for (parameter, value) in &overrides {
            let declared = &t["Parameters"][parameter.as_str()];
            assert!(!declared.is_null(), "{name}: {parameter} is no parameter of the template");
            // What a person must choose is a placeholder the template refuses: nothing deploys
            // with an example's issuer, alarm topic or sender.
            if value == PLACEHOLDER {
                assert!(takes(declared, value).is_err(), "{name}: {parameter} would deploy {PLACEHOLDER}");
            } else {
                takes(declared, value).unwrap_or_else(|e| panic!("{name}: {parameter}: {e}"));
                assert!(!value.contains("example."), "{name}: {parameter}={value} is an example's");
            }
        }
        let region = config[name]["global"]["parameters"]["region"].as_str();
        assert!(
            region.is_some_and(|r| !r.is_empty()),
            "{name}: `sam deploy --config-env {name}` reads its own region"
        );
        // Every parameter without a default is given.
        for (parameter, declared) in t["Parameters"].as_mapping().unwrap() {
            if declared.get("Default").is_none() {
                assert!(
                    overrides.contains_key(parameter.as_str().unwrap()),
                    "{name}: {parameter:?} has no default"
                );
            }
        }
        let capabilities = deploy["capabilities"].as_str().unwrap();
        for needed in ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"] {
            assert!(capabilities.contains(needed), "{name}: {needed} (SAM's transforms and the roles)");
        }
        // The template's rules hold for these values.
        if overrides.get("RequireEmailVerification").map(String::as_str) == Some("true") {
            assert!(
                overrides.get("MailFrom").is_some_and(|m| !m.is_empty()),
                "{name}: verification needs mail"
            );
        }
        assert_eq!(overrides["PublicBaseUrl"], PLACEHOLDER, "{name}: the issuer is the deployer's to say");
    }
    assert_ne!(stacks[0], stacks[1], "a stack (a table, a key, alarms) each");
}

#[test]
fn prod_is_watched_keeps_its_logs_and_says_who_may_sign_up() {
    let config = samconfig();
    let (deploy, prod) = environment(&config, "prod");
    assert_eq!(deploy["confirm_changeset"].as_bool(), Some(true), "a person reads prod's change set");
    assert!(prod["LogRetentionDays"].parse::<u32>().unwrap() >= 365);
    for explicit in ["OpenRegistration", "RequireEmailVerification"] {
        assert!(prod.contains_key(explicit), "{explicit}: a decision, not a default");
    }
    for chosen in ["AlarmTopicArn", "MailFrom"] {
        assert_eq!(prod[chosen], PLACEHOLDER, "{chosen}: a person's choice, refused until made");
    }
    let (_, dev) = environment(&config, "dev");
    assert!(
        dev["LogRetentionDays"].parse::<u32>().unwrap() < prod["LogRetentionDays"].parse::<u32>().unwrap()
    );
}

/// CloudFormation refuses, before it creates anything, a prod stack without a topic for its
/// alarms and a stack that requires verified addresses without a sender for the mail.
#[test]
fn the_templates_rules_refuse_a_deploy_that_could_not_work() {
    let t = template();
    let rule = |name: &str| {
        let rule = &t["Rules"][name];
        let condition = tagged(&rule["RuleCondition"], "!Equals");
        let assert = tagged(&rule["Assertions"][0]["Assert"], "!Not");
        let equals = tagged(&assert[0], "!Equals");
        (
            tagged(&condition[0], "!Ref").as_str().unwrap().to_owned(),
            condition[1].as_str().unwrap().to_owned(),
            tagged(&equals[0], "!Ref").as_str().unwrap().to_owned(),
            equals[1].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(
        rule("ProductionIsWatched"),
        ("Environment".into(), "prod".into(), "AlarmTopicArn".into(), String::new())
    );
    assert_eq!(
        rule("VerificationNeedsMail"),
        ("RequireEmailVerification".into(), "true".into(), "MailFrom".into(), String::new())
    );
}

/// The README's table of parameters has a row for each parameter of the template.
#[test]
fn the_readme_describes_every_parameter() {
    let t = template();
    let readme = include_str!("../../../README.md");
    let table = &readme[readme.find("### Parameters").unwrap()..];
    let table = &table[..table.find("\n\n**").unwrap_or(table.len())];
    for (name, _) in t["Parameters"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        assert!(
            table.contains(&format!("| `{name}` |"))
                || table.contains(&format!("`{name}` /"))
                || table.contains(&format!("/ `{name}` |")),
            "{name} has no row"
        );
    }
}
