//! Which store a gateway uses, and `on_both_stores!`, which runs a test on each.

/// Which store a gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store.
    Memory,
    /// A redis-server of its own, started by the harness.
    Redis,
}

/// Runs each named `fn(Backend)` as two tests: `memory::name` and `redis::name`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Memory)
            })*
        }
        mod redis {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Redis)
            })*
        }
    };
}
