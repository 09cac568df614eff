//! Errors of the zipfuse library: the zip reader's (`ziparchive`), which also covers what
//! zipfuse refuses in names and finds wrong in an entry's bytes when it reads them.

pub use ziparchive::ZipError;
