//! Rebuild when a migration is added or changed: `embed_migrations!` reads the
//! directory at compile time, which cargo does not track on its own.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
