//! Collection management: reading a definition (`parse`), changing a collection in place with
//! its schema diff (`update`), the keys and auth options a definition may carry (`options`), and the names inside the SQL a definition carries (`sql_names`).

mod options;
mod parse;
mod sql_names;
mod update;

pub(crate) use options::{identity_fields, password_auth_enabled};
pub(crate) use update::Step;
