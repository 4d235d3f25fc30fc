//! The rules file's text into checked channels and rules: YAML to JSON, each rule
//! through `Rule::parse`, each channel's name, kind, URL and secret (possibly from the
//! environment) bounded; one problem per bad field, named by its path.

use serde_json::{Map, Value};

use crate::alerts::rules::{valid_channel_name, Rule, MAX_RULES};

const MAX_FILE_CHANNELS: usize = 100;
const MAX_URL_CHARS: usize = 2_048;
const MAX_SECRET_CHARS: usize = 1_024;

/// A channel the file declares (no `Debug`: its URL and secret are secrets).
#[derive(Clone, PartialEq)]
pub(super) struct FileChannel {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) url: String,
    pub(super) secret: Option<String>,
}

/// What the file says.
pub(super) struct RulesFile {
    pub(super) channels: Vec<FileChannel>,
    pub(super) rules: Vec<Rule>,
}

/// Reads and checks the file; `env` looks up `url_env`/`secret_env` variables.
pub(super) fn parse(
    text: &str,
    declared: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RulesFile, Vec<String>> {
    let document: Value =
        serde_yaml::from_str(text).map_err(|error| vec![format!("not YAML: {error}")])?;
    let Some(top) = document.as_object() else {
        return Err(vec![
            "must be a mapping with channels: and rules:".to_owned()
        ]);
    };
    let mut problems = Vec::new();
    for key in top.keys() {
        if key != "channels" && key != "rules" {
            problems.push(format!("{key:?}: unknown section (channels, rules)"));
        }
    }
    let mut channels = Vec::new();
    match top.get("channels") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() <= MAX_FILE_CHANNELS => {
            for (i, item) in items.iter().enumerate() {
                match channel(item, env) {
                    Ok(channel) => {
                        if channels
                            .iter()
                            .any(|c: &FileChannel| c.name == channel.name)
                        {
                            problems.push(format!(
                                "channels[{i}].name: {:?} is declared twice",
                                channel.name
                            ));
                        }
                        channels.push(channel);
                    }
                    Err(found) => {
                        problems.extend(found.into_iter().map(|p| format!("channels[{i}].{p}")))
                    }
                }
            }
        }
        Some(_) => problems.push(format!(
            "channels: must be a list of at most {MAX_FILE_CHANNELS} channels"
        )),
    }
    let mut rules: Vec<Rule> = Vec::new();
    match top.get("rules") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() as i64 <= MAX_RULES => {
            for (i, item) in items.iter().enumerate() {
                let at = match item.get("name").and_then(Value::as_str) {
                    Some(name) => format!(
                        "rules[{i}] ({})",
                        crate::ingest::client_text::truncated(
                            name,
                            crate::alerts::rules::MAX_NAME_CHARS
                        )
                    ),
                    None => format!("rules[{i}]"),
                };
                match Rule::parse(item, Some(declared)) {
                    Ok(rule) => {
                        if rules.iter().any(|r| r.name == rule.name) {
                            problems.push(format!("{at}.name: declared twice"));
                        }
                        rules.push(rule);
                    }
                    Err(found) => problems.extend(found.into_iter().map(|p| format!("{at}.{p}"))),
                }
            }
        }
        Some(_) => problems.push(format!(
            "rules: must be a list of at most {MAX_RULES} rules"
        )),
    }
    if problems.is_empty() {
        Ok(RulesFile { channels, rules })
    } else {
        Err(problems)
    }
}

fn channel(item: &Value, env: &dyn Fn(&str) -> Option<String>) -> Result<FileChannel, Vec<String>> {
    let mut problems = Vec::new();
    let Some(fields) = item.as_object() else {
        return Err(vec!["must be a mapping".to_owned()]);
    };
    for key in fields.keys() {
        if !["name", "kind", "url", "url_env", "secret", "secret_env"].contains(&key.as_str()) {
            problems.push(format!("{key:?}: unknown field"));
        }
    }
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !valid_channel_name(name) {
        problems.push("name: 1 to 64 of a-z, 0-9, _ and -".to_owned());
    }
    let kind = fields
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "webhook" && kind != "slack" {
        problems.push("kind: must be webhook or slack".to_owned());
    }
    let url = secret_field(fields, "url", &mut problems, env);
    match &url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {}
        Some(_) => problems.push("url: must start with http:// or https://".to_owned()),
        None => problems.push("url: give url or url_env".to_owned()),
    }
    if url.as_ref().is_some_and(|u| u.len() > MAX_URL_CHARS) {
        problems.push(format!("url: at most {MAX_URL_CHARS} characters"));
    }
    let secret = secret_field(fields, "secret", &mut problems, env);
    if secret
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > MAX_SECRET_CHARS)
    {
        problems.push(format!("secret: 1 to {MAX_SECRET_CHARS} characters"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(FileChannel {
        name: name.to_owned(),
        kind: kind.to_owned(),
        url: url.unwrap_or_default(),
        secret,
    })
}

/// `field` given as is, or read from the variable `field_env` names. Never echoes it.
fn secret_field(
    fields: &Map<String, Value>,
    field: &str,
    problems: &mut Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let direct = fields.get(field);
    let from_env = fields.get(&format!("{field}_env"));
    match (direct, from_env) {
        (Some(_), Some(_)) => {
            problems.push(format!("{field}: give {field} or {field}_env, not both"));
            None
        }
        (Some(Value::String(value)), None) => Some(value.clone()),
        (Some(_), None) => {
            problems.push(format!("{field}: must be a string"));
            None
        }
        (None, Some(Value::String(variable))) => {
            let value = env(variable);
            if value.is_none() {
                problems.push(format!("{field}_env: the variable {variable:?} is not set"));
            }
            value
        }
        (None, Some(_)) => {
            problems.push(format!("{field}_env: must be a variable name"));
            None
        }
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
channels:
  - name: ops
    kind: webhook
    url_env: OPS_URL
    secret: s3cret
  - name: team-slack
    kind: slack
    url: https://hooks.slack.example/T0/B0/x
rules:
  - name: checkout errors
    kind: count
    search: {service: checkout, min_level: error}
    op: ">"
    threshold: 10
    window: 5m
    for: 2m
    channels: [ops, team-slack]
"#;

    fn env(name: &str) -> Option<String> {
        (name == "OPS_URL").then(|| "https://ops.example/hook".to_owned())
    }

    #[test]
    fn a_file_reads_its_channels_and_rules_with_urls_from_the_environment() {
        let file = parse(FILE, &[], &env).unwrap();
        assert_eq!(file.channels[0].url, "https://ops.example/hook");
        assert_eq!(file.channels[0].secret.as_deref(), Some("s3cret"));
        assert_eq!(file.rules[0].name, "checkout errors");
        assert_eq!(file.rules[0].threshold, 10.0);
    }

    #[test]
    fn a_bad_file_names_each_bad_field_and_never_a_secret() {
        let bad = FILE
            .replace("window: 5m", "window: often")
            .replace("kind: slack", "kind: pager")
            .replace("url_env: OPS_URL", "url_env: MISSING");
        let problems = parse(&bad, &[], &env).err().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("rules[0] (checkout errors).window:")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("channels[1].kind:")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("channels[0].url_env:")),
            "{problems:?}"
        );
        assert!(!problems.join(" ").contains("s3cret"));
        assert!(parse("rules: [", &[], &env).err().unwrap()[0].starts_with("not YAML"));
    }
}
