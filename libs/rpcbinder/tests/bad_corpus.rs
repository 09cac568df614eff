//! One test per file of the bad-input corpus (testdata/bad, made by testdata/gen_bad.py):
//! each must produce its specific error, without panicking or hanging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rpcbinder::fuzzing::{client_bytes, parse_parcel, serve_bytes, session_server_bytes};
use rpcbinder::{Error, ParcelError};

fn load(sub: &str, name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bad")
        .join(sub)
        .join(format!("{name}.bin"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

macro_rules! server_case {
    ($name:ident, $pat:pat $(if $guard:expr)?) => {
        #[test]
        fn $name() {
            let r = serve_bytes(&load("server", stringify!($name)));
            assert!(matches!(&r, Err($pat) $(if $guard)?), "{}: {r:?}", stringify!($name));
        }
    };
}

macro_rules! client_case {
    ($name:ident, $pat:pat) => {
        #[test]
        fn $name() {
            let r = client_bytes(&load("client", stringify!($name)));
            assert!(matches!(&r, Err($pat)), "{}: {r:?}", stringify!($name));
        }
    };
}

macro_rules! parcel_case {
    ($name:ident, $pat:pat) => {
        #[test]
        fn $name() {
            let r = parse_parcel(&load("parcel", stringify!($name)));
            assert!(matches!(&r, Err($pat)), "{}: {r:?}", stringify!($name));
        }
    };
}

mod server {
    use super::*;
    server_case!(truncated_header, Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof);
    server_case!(incoming_new_session, Error::IncomingNewSession);
    server_case!(bad_session_id_size, Error::BadSessionIdSize(16));
    server_case!(bad_cci, Error::BadConnectionInit(_));
    server_case!(fd_mode_unix, Error::UnsupportedFdMode(1));
    server_case!(unknown_session, Error::UnknownSession);
    server_case!(unknown_command, Error::UnknownCommand(7));
    server_case!(
        body_too_large,
        Error::BodyTooLarge {
            size: 100_001,
            max: 100_000
        }
    );
    server_case!(
        transact_body_too_small,
        Error::BodyTooSmall {
            command: "TRANSACT",
            size: 16,
            min: 40
        }
    );
    server_case!(truncated_body, Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof);
    server_case!(dec_strong_bad_size, Error::DecStrongBodySize(12));
    server_case!(object_table_misaligned, Error::ObjectTableMisaligned(2));
    server_case!(
        parcel_size_exceeds_body,
        Error::ParcelSizeExceedsBody { parcel: 1000, .. }
    );
    server_case!(
        object_offset_out_of_range,
        Error::ObjectOffsetOutOfRange {
            offset: 120,
            data_size: 124
        }
    );
    server_case!(fd_object_in_v1, Error::ObjectsNotAllowed(1));
    server_case!(
        dec_strong_unknown_address,
        Error::DecStrongUnknownAddress(3)
    );
    server_case!(
        dec_strong_underflow,
        Error::DecStrongUnderflow {
            amount: 2,
            held: 1,
            ..
        }
    );
    server_case!(bad_address_options, Error::BadAddress(7));
    server_case!(
        unknown_local_address,
        Error::UnknownLocalAddress(0x0000_0005_0000_0003)
    );
    server_case!(reply_to_server, Error::UnexpectedReply);
    server_case!(
        oneway_async_gap,
        Error::AsyncNumberMismatch {
            expected: 0,
            got: 5
        }
    );
}

mod client {
    use super::*;
    client_case!(version_above_offer, Error::UnsupportedVersion(2));
    client_case!(zero_max_threads, Error::Parcel(ParcelError::BadValue(0)));
    client_case!(short_session_id, Error::BadSessionIdSize(4));
    client_case!(null_root, Error::NoRootObject);
    client_case!(root_not_for_server, Error::UnknownLocalAddress(1));
    client_case!(
        dec_strong_unknown,
        Error::DecStrongUnknownAddress(0x0000_0009_0000_0003)
    );
    client_case!(
        reply_too_small,
        Error::BodyTooSmall {
            command: "REPLY",
            size: 8,
            min: 20
        }
    );
    client_case!(nested_transact_to_client, Error::UnexpectedTransaction(3));
    client_case!(
        v2_binder_not_in_table,
        Error::Parcel(ParcelError::BinderNotInObjectTable(0))
    );
    client_case!(
        descriptor_not_terminated,
        Error::Parcel(ParcelError::StringNotTerminated)
    );
}

mod parcel {
    use super::*;
    parcel_case!(string_not_terminated, ParcelError::StringNotTerminated);
    parcel_case!(string_invalid_utf16, ParcelError::InvalidUtf16);
    parcel_case!(string_negative_length, ParcelError::BadLength(-2));
    parcel_case!(string_huge_length, ParcelError::NotEnoughData { .. });
    parcel_case!(
        bytes_truncated,
        ParcelError::NotEnoughData {
            needed: 16,
            available: 4,
            ..
        }
    );
    parcel_case!(binder_bad_type, ParcelError::BadBinderType(2));
    parcel_case!(
        status_stack_header_too_big,
        ParcelError::BadStatusHeader(100)
    );
    parcel_case!(status_fat_header_negative, ParcelError::BadStatusHeader(-4));
    parcel_case!(parcelable_size_too_small, ParcelError::BadParcelableSize(3));
    parcel_case!(parcelable_size_past_end, ParcelError::BadParcelableSize(64));
    parcel_case!(parcelable_null, ParcelError::UnexpectedNull);
    parcel_case!(token_mismatch, ParcelError::InterfaceMismatch { .. });
}

/// Every corpus file has a test above (names listed here), and every file runs through every
/// fuzz entry without panicking.
#[test]
fn corpus_is_covered_and_survives_all_entries() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/bad");
    // Whitespace-insensitive, so that rustfmt's line breaks inside `case!(...)` do not matter.
    let known: String = include_str!("bad_corpus.rs").split_whitespace().collect();
    let mut n = 0;
    for sub in ["server", "client", "parcel"] {
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            assert!(
                known.contains(&format!("_case!({stem},")),
                "no test for {}",
                path.display()
            );
            let data = std::fs::read(&path).unwrap();
            let _ = serve_bytes(&data);
            let _ = client_bytes(&data);
            let _ = parse_parcel(&data);
            let _ = session_server_bytes(&data);
            n += 1;
        }
    }
    assert!(n >= 40, "{n} corpus files");
}
