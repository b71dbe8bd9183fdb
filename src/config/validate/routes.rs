//! `[[routes]]`: names, path patterns, methods, access, origin, allowed plans,
//! store-failure mode, CORS, and each route's cost against the plans' budgets.

use super::cors::compile_route_cors;
use super::Issues;
use crate::config::model::OriginSettings;
use crate::config::schema::RouteSection;
use crate::cors::Cors;
use crate::metering::Plan;
use crate::routing::{Access, Pattern, Route, StoreFailure};
use http::Method;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Every `[[routes]]`, in order; at least one is required. `has_anonymous`:
/// whether an `[anonymous]` section exists (an anonymous route needs one);
/// `cors`: the global policy a route's `cors` inherits or overrides.
pub(super) fn compile_routes(
    is: &mut Issues,
    sections: &[RouteSection],
    plans: &BTreeMap<String, Arc<Plan>>,
    origins: &BTreeMap<String, OriginSettings>,
    has_anonymous: bool,
    cors: &Cors,
) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in sections.iter().enumerate() {
        let key = format!("routes[{i}]");
        if r.name.trim().is_empty() {
            is.add(format!("{key}.name"), "must not be empty");
        } else if !names.insert(r.name.clone()) {
            is.add(
                format!("{key}.name"),
                format!("route name {:?} is used twice", r.name),
            );
        }
        let mut route = compile_route(is, &key, r, origins, has_anonymous);
        route.cors = compile_route_cors(is, &key, r.cors.as_ref(), cors);
        routes.push(route);
        for (j, plan) in r.plans.iter().enumerate() {
            if !plans.contains_key(plan) {
                is.add(
                    format!("{key}.plans[{j}]"),
                    format!("plan {plan:?} is not defined"),
                );
            }
        }
    }
    if routes.is_empty() {
        is.add("routes", "define at least one route");
    }
    check_costs(is, &routes, plans);
    routes
}

/// One route at `key`, apart from its name and its plans.
fn compile_route(
    is: &mut Issues,
    key: &str,
    r: &RouteSection,
    origins: &BTreeMap<String, OriginSettings>,
    has_anonymous: bool,
) -> Route {
    if r.paths.is_empty() {
        is.add(format!("{key}.paths"), "needs at least one path pattern");
    }
    let mut patterns = Vec::new();
    for (j, p) in r.paths.iter().enumerate() {
        match Pattern::parse(p) {
            Ok(pat) => patterns.push(pat),
            Err(e) => is.add(format!("{key}.paths[{j}]"), e),
        }
    }
    let mut methods = Vec::new();
    for (j, m) in r.methods.iter().enumerate() {
        match Method::from_bytes(m.as_bytes()) {
            Ok(method) if m.chars().all(|c| c.is_ascii_uppercase()) => methods.push(method),
            _ => is.add(
                format!("{key}.methods[{j}]"),
                format!("{m:?} is not an upper-case HTTP method"),
            ),
        }
    }
    let access = compile_access(is, key, &r.access, has_anonymous);
    let on_store_failure = compile_store_failure(is, key, &r.on_store_failure);
    if !origins.contains_key(&r.origin) {
        is.add(
            format!("{key}.origin"),
            format!("origin {:?} is not defined", r.origin),
        );
    }
    Route {
        name: r.name.clone(),
        patterns,
        methods,
        access,
        origin: r.origin.clone(),
        cost: r.cost,
        plans: r.plans.clone(),
        on_store_failure,
        upgrade: r.upgrade,
        cors: Cors::Off,
    }
}

/// `routes[i].access`; an anonymous route needs an `[anonymous]` section.
fn compile_access(is: &mut Issues, key: &str, text: &str, has_anonymous: bool) -> Access {
    let access = match text {
        "public" => Access::Public,
        "anonymous" => Access::Anonymous,
        "key" => Access::Key,
        other => {
            is.add(
                format!("{key}.access"),
                format!("{other:?} is not one of public, anonymous, key"),
            );
            Access::Key
        }
    };
    if access == Access::Anonymous && !has_anonymous {
        is.add(
            format!("{key}.access"),
            "an anonymous route needs an [anonymous] section with a plan",
        );
    }
    access
}

/// `routes[i].on_store_failure`.
fn compile_store_failure(is: &mut Issues, key: &str, text: &str) -> StoreFailure {
    match text {
        "fail_closed" => StoreFailure::FailClosed,
        "fail_open" => StoreFailure::FailOpen,
        other => {
            is.add(
                format!("{key}.on_store_failure"),
                format!("{other:?} is not fail_open or fail_closed"),
            );
            StoreFailure::FailClosed
        }
    }
}

/// When any plan meters credits, no metered route may cost more than the
/// largest budget: no call to it could ever be paid.
fn check_costs(is: &mut Issues, routes: &[Route], plans: &BTreeMap<String, Arc<Plan>>) {
    let largest_budget = plans
        .values()
        .filter_map(|p| p.credits.as_ref().map(|c| c.budget))
        .max();
    let Some(largest) = largest_budget else {
        return;
    };
    for (i, r) in routes.iter().enumerate() {
        if r.access != Access::Public && r.cost > largest {
            is.add(
                format!("routes[{i}].cost"),
                format!("{} is above every plan's credit budget (largest: {largest}); no call could ever be paid", r.cost),
            );
        }
    }
}
