//! Entry point for the cargo-fuzz target and the bad-corpus tests.

use crate::{Error, ParsedComposite};

/// Parses untrusted composite spec bytes; on success re-encodes the components into a layout
/// check (offsets strictly increasing, lengths summing to the disk length).
pub fn parse_spec(data: &[u8]) -> Result<ParsedComposite, Error> {
    let p = ParsedComposite::parse(data)?;
    let mut end = 0u64;
    for c in &p.components {
        debug_assert_eq!(c.offset, end);
        end = c.offset.saturating_add(c.length);
    }
    debug_assert_eq!(end, p.length);
    Ok(p)
}
