//! Android DICE chains, `[root COSE_Key, +COSE_Sign1]`: extend them as open-dice's
//! `DiceAndroidMainFlow` does, start them as `DiceAndroidMainFlowWithNewDiceChain`, and verify
//! them.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::cbor::{decode, write_array_header, Reader, Value};
use crate::cert::{cose_key_ed25519, label, main_flow, sig_structure, PROFILE_NAME};
use crate::derive::{hash, id_hex, keypair_from_cdi};
use crate::{Cdi, CdiValues, Error, InputValues, Mode, HASH_SIZE};

/// `DiceAndroidMainFlow`: derives the next CDIs and appends their certificate (profile
/// [`PROFILE_NAME`]) to `chain`, which must be one CBOR array of at least two items. The
/// result has the array head with one more item, the old items byte for byte, then the new
/// certificate. The old items are only skipped over (as open-dice does), not verified; bytes
/// after the array are [`Error::TrailingData`].
pub fn android_main_flow(
    current: &CdiValues,
    chain: &[u8],
    input: &InputValues,
) -> Result<(CdiValues, Vec<u8>), Error> {
    let mut r = Reader::new(chain);
    let (major, count) = r.read_head()?;
    if major != 4 {
        return Err(Error::NotAnArray);
    }
    if count < 2 {
        return Err(Error::ChainTooShort(count as usize));
    }
    let items_start = r.position();
    // Each item takes at least one byte, so this loop ends with Truncated on short inputs.
    for _ in 0..count {
        r.skip()?;
    }
    if !r.is_at_end() {
        return Err(Error::TrailingData);
    }
    let items = chain.get(items_start..).ok_or(Error::Truncated)?;
    let new_count = count
        .checked_add(1)
        .ok_or_else(|| Error::Cbor("chain item count overflows".into()))?;
    let (next, cert) = main_flow(current, input, Some(PROFILE_NAME));
    let mut out = Vec::with_capacity(chain.len() + cert.len() + 9);
    write_array_header(&mut out, new_count);
    out.extend_from_slice(items);
    out.extend_from_slice(&cert);
    Ok((next, out))
}

/// `DiceAndroidMainFlowWithNewDiceChain` from `current`: `[COSE_Key(key from current
/// CDI_Attest), certificate]`.
pub(crate) fn new_chain_from(current: &CdiValues, input: &InputValues) -> (CdiValues, Vec<u8>) {
    let root = keypair_from_cdi(&current.cdi_attest).verifying_key();
    let (next, cert) = main_flow(current, input, Some(PROFILE_NAME));
    let mut chain = Vec::with_capacity(cert.len() + 46);
    write_array_header(&mut chain, 2);
    chain.extend_from_slice(&cose_key_ed25519(&root));
    chain.extend_from_slice(&cert);
    (next, chain)
}

/// A new chain from a UDS: the first DICE step runs with `CDI_Attest = CDI_Seal = uds`, the root
/// key is [`keypair_from_cdi`]`(uds)`. Returns the next CDIs and `[root COSE_Key, cert]`.
pub fn new_chain(uds: &Cdi, input: &InputValues) -> (CdiValues, Vec<u8>) {
    let current = CdiValues {
        cdi_attest: *uds,
        cdi_seal: *uds,
    };
    new_chain_from(&current, input)
}

/// One verified chain entry: its claims as a verifier sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEntry {
    /// `iss`: hex of the ID of the key that signed this entry.
    pub issuer: String,
    /// `sub`: hex of the ID of [`ChainEntry::subject_public_key`].
    pub subject: String,
    pub code_hash: Vec<u8>,
    pub code_descriptor: Option<Vec<u8>>,
    /// The descriptor's bytes (a CBOR map in the Android profile, or 64 inline bytes).
    pub configuration_descriptor: Vec<u8>,
    pub configuration_hash: Option<Vec<u8>>,
    pub authority_hash: Vec<u8>,
    pub authority_descriptor: Option<Vec<u8>>,
    /// [`Mode::NotInitialized`] when absent or undefined.
    pub mode: Mode,
    /// The raw 32-byte Ed25519 key this entry certifies.
    pub subject_public_key: Vec<u8>,
    pub key_usage: Vec<u8>,
    pub profile_name: Option<String>,
    /// -70002 of the configuration descriptor, if the descriptor is a CBOR map that has it.
    pub component_name: Option<String>,
}

/// Verifies an Android DICE chain `[root COSE_Key, +COSE_Sign1]` and returns its entries
/// (without the root), in order.
///
/// Every entry must be signed (EdDSA over the COSE Sig_structure) by the previous entry's
/// subject key, the first by the root key; `iss` must be the ID of that key and `sub` the ID of
/// the entry's own key. Required claims (iss, sub, codeHash, configurationDescriptor,
/// authorityHash, subjectPublicKey, keyUsage) must be there; no integer key may repeat in any
/// map; hashes are 64 bytes; a configurationHash must be SHA-512 of the descriptor; mode may be
/// absent (NotInitialized), a 1-byte bstr, or (android.14) an integer. Unknown claims are
/// ignored. Only Ed25519 keys and EdDSA signatures are accepted; anything else is
/// [`Error::UnsupportedAlgorithm`]. Error `entry` numbers are indexes into the chain array.
pub fn verify_chain(chain: &[u8]) -> Result<Vec<ChainEntry>, Error> {
    let Value::Array(items) = decode(chain)? else {
        return Err(Error::NotAnArray);
    };
    if items.len() < 2 {
        return Err(Error::ChainTooShort(items.len()));
    }
    let mut items = items.iter();
    let root = items.next().ok_or(Error::ChainTooShort(0))?;
    let mut key = parse_cose_key(root)?;
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.enumerate() {
        let entry = verify_entry(i + 1, item, &key)?;
        key = VerifyingKey::try_from(entry.subject_public_key.as_slice())
            .map_err(|e| Error::BadKey(e.to_string()))?;
        entries.push(entry);
    }
    Ok(entries)
}

/// The pairs of a map whose integer keys are all different.
fn unique_map<'v, 'a>(v: &'v Value<'a>) -> Result<&'v [(Value<'a>, Value<'a>)], Error> {
    let Value::Map(pairs) = v else {
        return Err(Error::NotAMap);
    };
    let mut seen: Vec<i64> = Vec::with_capacity(pairs.len());
    for (k, _) in pairs {
        if let Some(k) = k.as_i64() {
            if seen.contains(&k) {
                return Err(Error::DuplicateKey(k));
            }
            seen.push(k);
        }
    }
    Ok(pairs)
}

fn lookup<'v, 'a>(pairs: &'v [(Value<'a>, Value<'a>)], key: i64) -> Option<&'v Value<'a>> {
    pairs
        .iter()
        .find(|(k, _)| k.as_i64() == Some(key))
        .map(|(_, v)| v)
}

fn int_field(pairs: &[(Value, Value)], key: i64, field: &'static str) -> Result<i64, Error> {
    let v = lookup(pairs, key).ok_or(Error::MissingField(field))?;
    v.as_i64().ok_or(Error::WrongType {
        field,
        expected: "integer",
    })
}

fn bstr<'a>(v: &Value<'a>, field: &'static str) -> Result<&'a [u8], Error> {
    match *v {
        Value::Bytes(b) => Ok(b),
        _ => Err(Error::WrongType {
            field,
            expected: "bstr",
        }),
    }
}

fn tstr<'a>(v: &Value<'a>, field: &'static str) -> Result<&'a str, Error> {
    match *v {
        Value::Text(s) => Ok(s),
        _ => Err(Error::WrongType {
            field,
            expected: "tstr",
        }),
    }
}

fn opt_bstr<'a>(
    pairs: &[(Value<'a>, Value<'a>)],
    key: i64,
    field: &'static str,
) -> Result<Option<&'a [u8]>, Error> {
    lookup(pairs, key).map(|v| bstr(v, field)).transpose()
}

fn req_bstr<'a>(
    pairs: &[(Value<'a>, Value<'a>)],
    key: i64,
    field: &'static str,
) -> Result<&'a [u8], Error> {
    opt_bstr(pairs, key, field)?.ok_or(Error::MissingField(field))
}

fn hash_field<'a>(
    pairs: &[(Value<'a>, Value<'a>)],
    key: i64,
    field: &'static str,
) -> Result<&'a [u8], Error> {
    let h = req_bstr(pairs, key, field)?;
    if h.len() != HASH_SIZE {
        return Err(Error::BadLength {
            field,
            expected: HASH_SIZE,
            actual: h.len(),
        });
    }
    Ok(h)
}

/// An Ed25519 COSE_Key: kty OKP, alg EdDSA (required), crv Ed25519, 32-byte x; key_ops, if
/// present, must be an array.
fn parse_cose_key(v: &Value) -> Result<VerifyingKey, Error> {
    let pairs = unique_map(v)?;
    let alg = int_field(pairs, label::COSE_ALG, "COSE_Key alg")?;
    if alg != label::ALG_EDDSA {
        return Err(Error::UnsupportedAlgorithm(alg));
    }
    let kty = int_field(pairs, label::COSE_KTY, "COSE_Key kty")?;
    if kty != label::KTY_OKP {
        return Err(Error::BadKey(format!(
            "kty {kty} with EdDSA, expected 1 (OKP)"
        )));
    }
    let crv = int_field(pairs, label::COSE_CRV, "COSE_Key crv")?;
    if crv != label::CRV_ED25519 {
        return Err(Error::BadKey(format!(
            "curve {crv} with EdDSA, expected 6 (Ed25519)"
        )));
    }
    if let Some(ops) = lookup(pairs, label::COSE_KEY_OPS) {
        if !matches!(ops, Value::Array(_)) {
            return Err(Error::WrongType {
                field: "COSE_Key key_ops",
                expected: "array",
            });
        }
    }
    let x = req_bstr(pairs, label::COSE_X, "COSE_Key x")?;
    let x: [u8; 32] = x.try_into().map_err(|_| Error::BadLength {
        field: "COSE_Key x",
        expected: 32,
        actual: x.len(),
    })?;
    VerifyingKey::from_bytes(&x).map_err(|e| Error::BadKey(e.to_string()))
}

fn verify_entry(entry: usize, item: &Value, key: &VerifyingKey) -> Result<ChainEntry, Error> {
    let Value::Array(parts) = item else {
        return Err(Error::WrongType {
            field: "DiceChainEntry",
            expected: "COSE_Sign1 array",
        });
    };
    let [protected, unprotected, payload, signature] = parts.as_slice() else {
        return Err(Error::BadLength {
            field: "COSE_Sign1",
            expected: 4,
            actual: parts.len(),
        });
    };
    let protected = bstr(protected, "COSE_Sign1 protected")?;
    let header = decode(protected)?;
    let alg = int_field(unique_map(&header)?, label::HEADER_ALG, "protected alg")?;
    if alg != label::ALG_EDDSA {
        return Err(Error::UnsupportedAlgorithm(alg));
    }
    unique_map(unprotected)?;
    let payload = bstr(payload, "COSE_Sign1 payload")?;
    let signature = bstr(signature, "COSE_Sign1 signature")?;
    let signature = Signature::from_slice(signature).map_err(|_| Error::BadLength {
        field: "COSE_Sign1 signature",
        expected: 64,
        actual: signature.len(),
    })?;
    key.verify_strict(&sig_structure(protected, payload), &signature)
        .map_err(|_| Error::BadSignature { entry })?;

    let claims = decode(payload)?;
    let claims = unique_map(&claims)?;
    let issuer = tstr(
        lookup(claims, label::ISS).ok_or(Error::MissingField("iss"))?,
        "iss",
    )?;
    if issuer != id_hex(key.as_bytes()) {
        return Err(Error::IssuerMismatch { entry });
    }
    let subject = tstr(
        lookup(claims, label::SUB).ok_or(Error::MissingField("sub"))?,
        "sub",
    )?;
    let code_hash = hash_field(claims, label::CODE_HASH, "codeHash")?;
    let code_descriptor = opt_bstr(claims, label::CODE_DESCRIPTOR, "codeDescriptor")?;
    let config = req_bstr(
        claims,
        label::CONFIGURATION_DESCRIPTOR,
        "configurationDescriptor",
    )?;
    let config_hash = opt_bstr(claims, label::CONFIGURATION_HASH, "configurationHash")?;
    if let Some(h) = config_hash {
        if h.len() != HASH_SIZE {
            return Err(Error::BadLength {
                field: "configurationHash",
                expected: HASH_SIZE,
                actual: h.len(),
            });
        }
        if h != hash(config) {
            return Err(Error::ConfigHashMismatch { entry });
        }
    }
    let authority_hash = hash_field(claims, label::AUTHORITY_HASH, "authorityHash")?;
    let authority_descriptor =
        opt_bstr(claims, label::AUTHORITY_DESCRIPTOR, "authorityDescriptor")?;
    let mode = match lookup(claims, label::MODE) {
        None => Mode::NotInitialized,
        Some(Value::Bytes(b)) => match b {
            [m] => Mode::from_byte(*m),
            _ => {
                return Err(Error::BadLength {
                    field: "mode",
                    expected: 1,
                    actual: b.len(),
                })
            }
        },
        Some(v @ (Value::Uint(_) | Value::Nint(_))) => v
            .as_i64()
            .and_then(|m| u8::try_from(m).ok())
            .map_or(Mode::NotInitialized, Mode::from_byte),
        Some(_) => {
            return Err(Error::WrongType {
                field: "mode",
                expected: "bstr or integer",
            })
        }
    };
    let subject_key = req_bstr(claims, label::SUBJECT_PUBLIC_KEY, "subjectPublicKey")?;
    let subject_key = parse_cose_key(&decode(subject_key)?)?;
    if subject != id_hex(subject_key.as_bytes()) {
        return Err(Error::SubjectMismatch { entry });
    }
    let key_usage = req_bstr(claims, label::KEY_USAGE, "keyUsage")?;
    let profile_name = lookup(claims, label::PROFILE_NAME)
        .map(|v| tstr(v, "profileName"))
        .transpose()?;
    Ok(ChainEntry {
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
        code_hash: code_hash.to_vec(),
        code_descriptor: code_descriptor.map(<[u8]>::to_vec),
        configuration_descriptor: config.to_vec(),
        configuration_hash: config_hash.map(<[u8]>::to_vec),
        authority_hash: authority_hash.to_vec(),
        authority_descriptor: authority_descriptor.map(<[u8]>::to_vec),
        mode,
        subject_public_key: subject_key.as_bytes().to_vec(),
        key_usage: key_usage.to_vec(),
        profile_name: profile_name.map(str::to_owned),
        component_name: component_name(config)?,
    })
}

/// -70002 of a configuration descriptor. A descriptor that is not one CBOR map is not an
/// error (some implementations put a hash there); a map with a repeated key, or a -70002 that
/// is not text, is.
fn component_name(config: &[u8]) -> Result<Option<String>, Error> {
    let Ok(v @ Value::Map(_)) = decode(config) else {
        return Ok(None);
    };
    let pairs = unique_map(&v)?;
    lookup(pairs, label::COMPONENT_NAME)
        .map(|n| tstr(n, "component name").map(str::to_owned))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::{write_bstr, write_int, write_map_header, write_tstr};
    use crate::cert::cose_sign1;
    use crate::{Config, ConfigDescriptor};

    fn input(name: &str, mode: Mode) -> InputValues {
        InputValues {
            code_hash: hash(name.as_bytes()),
            config: Config::Descriptor(
                ConfigDescriptor {
                    component_name: Some(name.into()),
                    ..Default::default()
                }
                .to_bytes(),
            ),
            authority_hash: hash(b"authority"),
            mode,
            ..Default::default()
        }
    }

    #[test]
    fn new_chain_then_extend() {
        let uds = [9u8; 32];
        let (cdis, chain) = new_chain(&uds, &input("vm_entry", Mode::Debug));
        assert_eq!(chain[0], 0x82);
        assert_eq!(
            chain[1..46],
            cose_key_ed25519(&keypair_from_cdi(&uds).verifying_key())[..]
        );
        let (cdis2, chain2) =
            android_main_flow(&cdis, &chain, &input("Microdroid payload", Mode::Normal)).unwrap();
        assert_eq!(chain2[0], 0x83);
        assert_eq!(chain2[1..chain.len()], chain[1..]);
        let entries = verify_chain(&chain2).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].component_name.as_deref(), Some("vm_entry"));
        assert_eq!(entries[0].mode, Mode::Debug);
        assert_eq!(entries[1].mode, Mode::Normal);
        assert_eq!(entries[1].profile_name.as_deref(), Some(PROFILE_NAME));
        assert_eq!(
            entries[1].subject_public_key,
            keypair_from_cdi(&cdis2.cdi_attest)
                .verifying_key()
                .as_bytes()
        );
        assert_eq!(entries[1].issuer, entries[0].subject);
        assert_eq!(entries[0].key_usage, [0x20]);
        assert!(entries[0].configuration_hash.is_some());
    }

    #[test]
    fn main_flow_rejects_bad_chains() {
        let cdis = CdiValues {
            cdi_attest: [1; 32],
            cdi_seal: [2; 32],
        };
        let i = InputValues::default();
        assert!(matches!(
            android_main_flow(&cdis, &[0x81, 0x00], &i),
            Err(Error::ChainTooShort(1))
        ));
        assert!(matches!(
            android_main_flow(&cdis, &[0xa0], &i),
            Err(Error::NotAnArray)
        ));
        assert!(matches!(
            android_main_flow(&cdis, &[0x83, 0x00, 0x00], &i),
            Err(Error::Truncated)
        ));
        assert!(matches!(
            android_main_flow(&cdis, &[0x82, 0x00, 0x00, 0x00], &i),
            Err(Error::TrailingData)
        ));
        // Items are opaque to the main flow, as in open-dice.
        let (_, out) = android_main_flow(&cdis, &[0x82, 0x00, 0x00], &i).unwrap();
        assert_eq!(out[..3], [0x83, 0x00, 0x00]);
    }

    /// A payload with the given claims, signed by `key` into a chain after `root`.
    fn signed_chain(claims: &[(i64, Vec<u8>)]) -> Vec<u8> {
        let root = keypair_from_cdi(&[0; 32]);
        let mut payload = Vec::new();
        write_map_header(&mut payload, claims.len() as u64);
        for (k, v) in claims {
            write_int(&mut payload, *k);
            payload.extend_from_slice(v);
        }
        let mut chain = vec![0x82];
        chain.extend(cose_key_ed25519(&root.verifying_key()));
        chain.extend(cose_sign1(&root, &payload));
        chain
    }

    fn b(bytes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_bstr(&mut v, bytes);
        v
    }

    fn t(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        write_tstr(&mut v, s);
        v
    }

    fn minimal_claims() -> Vec<(i64, Vec<u8>)> {
        let root = keypair_from_cdi(&[0; 32]).verifying_key();
        let subject = keypair_from_cdi(&[1; 32]).verifying_key();
        vec![
            (label::ISS, t(&id_hex(root.as_bytes()))),
            (label::SUB, t(&id_hex(subject.as_bytes()))),
            (label::CODE_HASH, b(&[1; 64])),
            (label::CONFIGURATION_DESCRIPTOR, b(&[0xde, 0xad])),
            (label::AUTHORITY_HASH, b(&[2; 64])),
            (label::SUBJECT_PUBLIC_KEY, b(&cose_key_ed25519(&subject))),
            (label::KEY_USAGE, b(&[0x20])),
        ]
    }

    #[test]
    fn lenient_where_avf_is() {
        // No mode, no profile, a descriptor that is not CBOR, unknown claims, text keys.
        let mut claims = minimal_claims();
        claims.push((-99, t("unknown")));
        let mut chain = signed_chain(&claims);
        let e = verify_chain(&chain).unwrap();
        assert_eq!(e[0].mode, Mode::NotInitialized);
        assert_eq!(e[0].component_name, None);
        assert_eq!(e[0].profile_name, None);
        // Integer mode (android.14), out-of-range values read as NotInitialized.
        for (m, want) in [(2u8, Mode::Debug), (9, Mode::NotInitialized)] {
            let mut c = minimal_claims();
            let mut v = Vec::new();
            crate::cbor::write_uint(&mut v, u64::from(m));
            c.push((label::MODE, v));
            chain = signed_chain(&c);
            assert_eq!(verify_chain(&chain).unwrap()[0].mode, want);
        }
    }

    #[test]
    fn strict_where_it_matters() {
        type Case = (Vec<(i64, Vec<u8>)>, fn(&Error) -> bool);
        let cases: Vec<Case> = vec![
            (
                {
                    let mut c = minimal_claims();
                    c.remove(5);
                    c
                },
                |e| matches!(e, Error::MissingField("subjectPublicKey")),
            ),
            (
                {
                    let mut c = minimal_claims();
                    c[1] = (label::SUB, t(&"0".repeat(40)));
                    c
                },
                |e| matches!(e, Error::SubjectMismatch { entry: 1 }),
            ),
            (
                {
                    let mut c = minimal_claims();
                    c.push((label::CONFIGURATION_HASH, b(&[0; 64])));
                    c
                },
                |e| matches!(e, Error::ConfigHashMismatch { entry: 1 }),
            ),
            (
                {
                    let mut c = minimal_claims();
                    c.push((label::MODE, b(&[1, 1])));
                    c
                },
                |e| {
                    matches!(
                        e,
                        Error::BadLength {
                            field: "mode",
                            expected: 1,
                            actual: 2
                        }
                    )
                },
            ),
            (
                {
                    let mut c = minimal_claims();
                    c[4] = (label::AUTHORITY_HASH, b(&[0; 63]));
                    c
                },
                |e| {
                    matches!(
                        e,
                        Error::BadLength {
                            field: "authorityHash",
                            ..
                        }
                    )
                },
            ),
            (
                {
                    let mut c = minimal_claims();
                    c[0] = (label::ISS, b(b"not text"));
                    c
                },
                |e| matches!(e, Error::WrongType { field: "iss", .. }),
            ),
            (
                {
                    let mut c = minimal_claims();
                    let mut d = Vec::new();
                    write_map_header(&mut d, 2);
                    write_int(&mut d, label::COMPONENT_NAME);
                    write_tstr(&mut d, "a");
                    write_int(&mut d, label::COMPONENT_NAME);
                    write_tstr(&mut d, "b");
                    c[3] = (label::CONFIGURATION_DESCRIPTOR, b(&d));
                    c
                },
                |e| matches!(e, Error::DuplicateKey(-70002)),
            ),
        ];
        for (i, (claims, ok)) in cases.into_iter().enumerate() {
            let err = verify_chain(&signed_chain(&claims)).unwrap_err();
            assert!(ok(&err), "case {i}: {err:?}");
        }
    }
}
