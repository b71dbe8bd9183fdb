//! Plan policies on the query string: the result cap (`limit` above it is a
//! 400, never trimmed, however the parameter is written or repeated) and
//! pagination parameters on plans without pagination.

use crate::config::QueryPolicy;
use crate::metering::Plan;
use percent_encoding::percent_decode_str;

/// A parameter name as a lenient server might read it: decoded, lower-case,
/// cut at the first character that is not a letter, digit or `_`
/// (`LIMIT`, `%6Cimit`, `limit[]` and `limit ` all read as `limit`).
fn canonical_name(raw: &str) -> String {
    let decoded = percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .to_lowercase();
    let trimmed = decoded.trim_start();
    trimmed
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Checks the query against the plan; returns the query to forward (with the
/// cap added when no limit was given) or the reason for a 400.
pub fn check_query(
    query: Option<&str>,
    plan: &Plan,
    q: &QueryPolicy,
) -> Result<Option<String>, String> {
    let mut saw_limit = false;
    // Some servers also split parameters on ';' and some do not: on a plan with
    // query limits, a ';' could make tollgate and the origin disagree, so it is
    // refused.
    if (plan.max_results.is_some() || !plan.pagination) && query.is_some_and(|q| q.contains(';')) {
        return Err(format!(
            "';' is not allowed in the query on the {} plan: separate parameters with '&'",
            plan.name
        ));
    }
    for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = part.split_once('=').unwrap_or((part, ""));
        let name = canonical_name(raw_name);
        if !plan.pagination && q.pagination_params.contains(&name) {
            return Err(format!(
                "pagination is not available on the {} plan: remove the {name} parameter",
                plan.name
            ));
        }
        if let Some(cap) = plan.max_results {
            if name == q.limit_param {
                saw_limit = true;
                let value = percent_decode_str(&raw_value.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned();
                let ok = !value.is_empty()
                    && value.len() <= 9
                    && value.bytes().all(|b| b.is_ascii_digit())
                    && value.parse::<u32>().is_ok_and(|n| n >= 1 && n <= cap);
                if !ok {
                    return Err(format!(
                        "{} must be a whole number from 1 to {cap} on the {} plan",
                        q.limit_param, plan.name
                    ));
                }
            }
        }
    }
    match (plan.max_results, saw_limit) {
        (Some(cap), false) => Ok(Some(match query {
            Some(qs) if !qs.is_empty() => format!("{qs}&{}={cap}", q.limit_param),
            _ => format!("{}={cap}", q.limit_param),
        })),
        _ => Ok(query.map(String::from)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn demo() -> Plan {
        let mut p = Plan::simple("demo", 240, Duration::from_secs(60), 240);
        p.max_results = Some(3);
        p.pagination = false;
        p
    }

    fn policy() -> QueryPolicy {
        QueryPolicy {
            limit_param: "limit".into(),
            pagination_params: vec!["cursor".into(), "offset".into(), "page".into()],
        }
    }

    #[test]
    fn caps_limit_however_written() {
        let (p, q) = (demo(), policy());
        assert_eq!(
            check_query(Some("limit=3"), &p, &q),
            Ok(Some("limit=3".into()))
        );
        assert_eq!(
            check_query(Some("x=1"), &p, &q),
            Ok(Some("x=1&limit=3".into()))
        );
        assert_eq!(check_query(None, &p, &q), Ok(Some("limit=3".into())));
        for bad in [
            "limit=4",
            "limit=3&limit=50",
            "LIMIT=50",
            "%6Cimit=50",
            "limit[]=50",
            "limit=+5",
            "limit=5e1",
            "limit=-1",
            "limit=",
            "limit=0",
            "limit=3.0",
            "limit=0x10",
            "limit=%35%30",
            "Limit=99999999999",
            "x=1;limit=500",
            "x=1;limit=3",
            "limit=3;x=1",
        ] {
            assert!(check_query(Some(bad), &p, &q).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_pagination() {
        let (p, q) = (demo(), policy());
        for bad in [
            "cursor=abc",
            "offset=3",
            "page=2",
            "PAGE=2",
            "Cursor%00=x",
            "a=1;cursor=x",
        ] {
            assert!(check_query(Some(bad), &p, &q).is_err(), "{bad}");
        }
        let mut open = demo();
        open.pagination = true;
        open.max_results = None;
        assert_eq!(
            check_query(Some("cursor=abc&limit=500"), &open, &q),
            Ok(Some("cursor=abc&limit=500".into()))
        );
    }
}
