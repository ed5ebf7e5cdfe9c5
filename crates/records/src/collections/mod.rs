//! Collection management: the collections pier makes itself (`system`), creating, deleting
//! and listing them (`manage`), reading a definition (`parse`), changing a collection in place
//! with its schema diff (`update`), importing a list of definitions in one transaction
//! (`import`), view collections (`views`), the keys and auth options a definition may carry
//! (`options`), and the names inside the SQL a definition carries (`sql_names`).

mod import;
mod manage;
mod options;
mod parse;
mod sql_names;
mod system;
mod update;
mod views;

pub(crate) use options::{identity_fields, password_auth_enabled, public_auth_options};
pub use system::SUPERUSERS_ID;
pub(crate) use system::{auth_fields, auth_options, id_field, superusers_collection};
pub(crate) use update::Step;
