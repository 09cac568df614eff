#![no_main]

// parse_manifest and parse_document must not panic or hang on any input; a document that
// parses must survive write → parse unchanged (fuzz_entry returns false otherwise).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    assert!(axml::fuzz_entry(data));
});
