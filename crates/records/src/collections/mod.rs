//! Collection management: reading a definition (`parse`), changing a collection in place with
//! its schema diff (`update`), and the names inside the SQL a definition carries (`sql_names`).

mod parse;
mod sql_names;
mod update;

pub(crate) use update::Step;
