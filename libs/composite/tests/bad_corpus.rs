//! One test per file in testdata/bad (made by testdata/gen_bad.py).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use composite::fuzzing::parse_spec;
use composite::Error;

fn load(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/testdata/bad/{name}.img",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

macro_rules! case {
    ($name:ident, $pat:pat) => {
        #[test]
        fn $name() {
            let r = parse_spec(&load(stringify!($name)));
            assert!(matches!(&r, Err($pat)), "{}: {r:?}", stringify!($name));
        }
    };
}

case!(bad_magic, Error::BadMagic);
case!(truncated_magic, Error::BadMagic);
case!(qcow2_magic, Error::BadMagic);
case!(protobuf_truncated_varint, Error::Decode(_));
case!(protobuf_bad_wire_type, Error::Decode(_));
case!(protobuf_length_past_end, Error::Decode(_));
case!(protobuf_path_not_utf8, Error::Decode(_));
case!(version_3, Error::UnsupportedVersion(3));
case!(no_components, Error::NoComponents);
case!(duplicate_offset, Error::DuplicateOffset(0));
case!(
    component_past_end,
    Error::ComponentPastEnd {
        offset: 10,
        length: 10
    }
);
case!(
    zero_length_disk,
    Error::ComponentPastEnd {
        offset: 0,
        length: 0
    }
);
case!(unknown_capability, Error::UnknownCapability(2));
case!(empty_path, Error::EmptyPath(0));
case!(gap_at_start, Error::GapAtStart(512));

#[test]
fn corpus_is_covered() {
    // Whitespace-insensitive, so that rustfmt's line breaks inside `case!(...)` do not matter.
    let known: String = include_str!("bad_corpus.rs").split_whitespace().collect();
    let dir = format!("{}/testdata/bad", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("img") {
            continue;
        }
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        assert!(
            known.contains(&format!("case!({stem},")),
            "no test for {}",
            p.display()
        );
        let _ = parse_spec(&std::fs::read(&p).unwrap());
        n += 1;
    }
    assert_eq!(n, 15);
}
