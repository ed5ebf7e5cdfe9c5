//! pier's integration tests: the HTTP API through the real application (`api`, `ops`), and the
//! built binary through its command line (`cli`, `process`).

mod api;
mod cli;
mod helpers;
mod process;
