//! Certificates for TLS tests: a fresh private CA and a `localhost` leaf it
//! signed, made with the `openssl` command.

use super::processes::unique_name;
use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed (scripts/deps.sh test)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh CA (`ca.pem`) and a `localhost` certificate it signed (`leaf.pem`,
/// `leaf.key`), in a new directory.
pub fn certificates(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(&format!("tollgate-tls-{name}")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tollgate test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    dir
}

/// A new key and a certificate for `host` signed by the CA of `dir` (made by
/// [`certificates`]): `{file}.pem` and `{file}.key` in `dir`, written beside
/// and renamed into place, so a reader never sees half a file.
pub fn leaf_for(dir: &Path, file: &str, host: &str) -> (PathBuf, PathBuf) {
    let tmp = unique_name(file);
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{tmp}.key"),
            "-out",
            &format!("{tmp}.csr"),
            "-subj",
            &format!("/CN={host}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{tmp}.cnf")),
        format!("subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\n"),
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{tmp}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{tmp}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{tmp}.cnf"),
        ],
    );
    let (pem, key) = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}.key")),
    );
    std::fs::rename(dir.join(format!("{tmp}.key")), &key).expect("key in place");
    std::fs::rename(dir.join(format!("{tmp}.pem")), &pem).expect("cert in place");
    (pem, key)
}
