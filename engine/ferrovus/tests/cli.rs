//! The `ferrovus` binary's command line, as a process.

use std::process::{Command, Output};

use ferrovus_server::node::{self, RoleKind};

fn ferrovus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrovus"))
        .args(args)
        .env_remove("FERROVUS_CONFIG")
        .env("FERROVUS_HTTP_PORT", "0")
        .output()
        .expect("run ferrovus")
}

#[test]
fn run_of_a_role_not_in_this_build_fails_fast_naming_it() {
    for kind in RoleKind::ALL {
        let role = kind.as_str();
        let out = ferrovus(&["run", role]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{role}: {stderr}");
        let reason = if node::available_role(kind).is_some() {
            // Built: it gets as far as the configuration (cluster roles need etcd).
            "keep their metadata in etcd".to_string()
        } else {
            format!("the {role} role is not implemented")
        };
        assert!(
            stderr.contains(&format!("ferrovus run {role}")) && stderr.contains(&reason),
            "{role}: {stderr}"
        );
    }
}

#[test]
fn run_proxy_needs_etcd() {
    let out = ferrovus(&["run", "proxy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ferrovus run proxy") && stderr.contains("meta.kind: etcd"),
        "{stderr}"
    );
}

#[test]
fn run_of_an_unknown_role_lists_the_valid_ones() {
    let out = ferrovus(&["run", "indexer"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("indexer") && stderr.contains("coordinator, proxy, streaming, query, data"),
        "{stderr}"
    );
}

#[test]
fn run_coordinator_needs_etcd() {
    let out = ferrovus(&["run", "coordinator"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ferrovus run coordinator") && stderr.contains("metadata in etcd"),
        "{stderr}"
    );
}
