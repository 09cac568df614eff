//! The Android DICE handover `{1: bstr .size 32 CDI_Attest, 2: bstr .size 32 CDI_Seal,
//! ? 3: DiceCertChain}` (open-dice `src/android.c`).

use crate::cbor::{write_bstr, write_int, write_map_header, Reader};
use crate::chain::{android_main_flow, new_chain_from};
use crate::{CdiValues, Error, InputValues, CDI_SIZE};

const CDI_ATTEST_LABEL: i64 = 1;
const CDI_SEAL_LABEL: i64 = 2;
const CHAIN_LABEL: i64 = 3;

/// A parsed handover. Its CDIs are zeroed when it is dropped; `Debug` does not show them.
#[derive(Clone, PartialEq, Eq)]
pub struct Handover {
    pub cdis: CdiValues,
    /// The raw bytes of the item under key 3 (normally the chain array), if any.
    pub chain: Option<Vec<u8>>,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover")
            .field("cdis", &self.cdis)
            .field("chain_len", &self.chain.as_ref().map(Vec::len))
            .finish()
    }
}

fn read_cdi(r: &mut Reader, label: i64, field: &'static str) -> Result<[u8; CDI_SIZE], Error> {
    let key = r.read_int("handover key")?;
    if key != label {
        return Err(Error::UnexpectedKey {
            expected: label,
            actual: key,
        });
    }
    let v = r.read_bstr(field)?;
    v.try_into().map_err(|_| Error::BadLength {
        field,
        expected: CDI_SIZE,
        actual: v.len(),
    })
}

impl Handover {
    /// `DiceAndroidHandoverParse`: a map of at least two pairs whose first key is 1 and second
    /// key 2, each with a 32-byte bstr. If the map declares a third pair and its key reads as
    /// the integer 3, the next item (any one CBOR item, skipped as open-dice skips it) is the
    /// chain; another third key means no chain. Bytes after that are ignored (the handover may
    /// sit in a larger, zero-padded region).
    pub fn parse(bytes: &[u8]) -> Result<Handover, Error> {
        let mut r = Reader::new(bytes);
        let (major, pairs) = r.read_head()?;
        if major != 5 {
            return Err(Error::NotAMap);
        }
        if pairs < 2 {
            return Err(Error::BadLength {
                field: "handover map",
                expected: 2,
                actual: pairs as usize,
            });
        }
        let cdi_attest = read_cdi(&mut r, CDI_ATTEST_LABEL, "CDI_Attest")?;
        let cdi_seal = read_cdi(&mut r, CDI_SEAL_LABEL, "CDI_Seal")?;
        let cdis = CdiValues {
            cdi_attest,
            cdi_seal,
        };
        let mut chain = None;
        if pairs >= 3 && matches!(r.read_int("handover key"), Ok(CHAIN_LABEL)) {
            let start = r.position();
            r.skip()?;
            let item = bytes.get(start..r.position()).ok_or(Error::Truncated)?;
            chain = Some(item.to_vec());
        }
        Ok(Handover { cdis, chain })
    }

    /// The handover bytes: `map(3)` with the chain embedded as is, or `map(2)` without a chain
    /// (an empty chain counts as none).
    pub fn to_bytes(&self) -> Vec<u8> {
        let chain = self.chain.as_deref().filter(|c| !c.is_empty());
        let mut out = Vec::with_capacity(71 + chain.map_or(0, |c| c.len() + 1));
        write_map_header(&mut out, if chain.is_some() { 3 } else { 2 });
        write_int(&mut out, CDI_ATTEST_LABEL);
        write_bstr(&mut out, &self.cdis.cdi_attest);
        write_int(&mut out, CDI_SEAL_LABEL);
        write_bstr(&mut out, &self.cdis.cdi_seal);
        if let Some(chain) = chain {
            write_int(&mut out, CHAIN_LABEL);
            out.extend_from_slice(chain);
        }
        out
    }
}

/// `DiceAndroidHandoverMainFlow`: the next handover. With a (non-empty) chain, the new
/// certificate is appended to it ([`android_main_flow`]); without one, a new chain
/// `[COSE_Key(key from the current CDI_Attest), certificate]` is started. The result always
/// has a chain.
pub fn android_handover_main_flow(
    handover: &Handover,
    input: &InputValues,
) -> Result<Handover, Error> {
    let (cdis, chain) = match handover.chain.as_deref().filter(|c| !c.is_empty()) {
        Some(chain) => android_main_flow(&handover.cdis, chain, input)?,
        None => new_chain_from(&handover.cdis, input),
    };
    Ok(Handover {
        cdis,
        chain: Some(chain),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{verify_chain, Mode};

    fn cdis() -> CdiValues {
        CdiValues {
            cdi_attest: [0x11; 32],
            cdi_seal: [0x22; 32],
        }
    }

    #[test]
    fn layout_and_round_trip() {
        let h = Handover {
            cdis: cdis(),
            chain: Some(vec![0x82, 0x01, 0x02]),
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 0xa3);
        assert_eq!(b[1..4], [0x01, 0x58, 0x20]);
        assert_eq!(b[4..36], [0x11; 32]);
        assert_eq!(b[36..39], [0x02, 0x58, 0x20]);
        assert_eq!(b[39..71], [0x22; 32]);
        assert_eq!(b[71..], [0x03, 0x82, 0x01, 0x02]);
        assert_eq!(Handover::parse(&b).unwrap(), h);
        // Trailing bytes (zero padding) are ignored.
        let mut padded = b.clone();
        padded.resize(4096, 0);
        assert_eq!(Handover::parse(&padded).unwrap(), h);

        let none = Handover {
            cdis: cdis(),
            chain: None,
        };
        let b = none.to_bytes();
        assert_eq!(b.len(), 71);
        assert_eq!(b[0], 0xa2);
        assert_eq!(Handover::parse(&b).unwrap(), none);
        let empty = Handover {
            cdis: cdis(),
            chain: Some(Vec::new()),
        };
        assert_eq!(empty.to_bytes(), b);
    }

    #[test]
    fn debug_shows_the_chain_length_and_no_secret() {
        let h = Handover {
            cdis: cdis(),
            chain: Some(vec![0x82, 0x01, 0x02]),
        };
        let text = format!("{h:?}");
        assert_eq!(
            text,
            "Handover { cdis: CdiValues { cdi_attest: \"<secret>\", cdi_seal: \"<secret>\" }, \
             chain_len: Some(3) }"
        );
    }

    #[test]
    fn third_key_other_than_3_means_no_chain() {
        let mut b = Handover {
            cdis: cdis(),
            chain: None,
        }
        .to_bytes();
        b[0] = 0xa3;
        b.extend_from_slice(&[0x04, 0x00]);
        assert_eq!(Handover::parse(&b).unwrap().chain, None);
        // A declared third pair that is missing altogether is no chain either (open-dice).
        b.truncate(71);
        assert_eq!(Handover::parse(&b).unwrap().chain, None);
        // But a key 3 whose item is cut short is an error.
        b.extend_from_slice(&[0x03, 0x82, 0x00]);
        assert!(matches!(Handover::parse(&b), Err(Error::Truncated)));
    }

    #[test]
    fn parse_errors() {
        let good = Handover {
            cdis: cdis(),
            chain: None,
        }
        .to_bytes();
        assert!(matches!(Handover::parse(&[0x80]), Err(Error::NotAMap)));
        assert!(matches!(
            Handover::parse(&[0xa1, 0x01, 0x40]),
            Err(Error::BadLength { actual: 1, .. })
        ));
        assert!(matches!(
            Handover::parse(&good[..50]),
            Err(Error::Truncated)
        ));
        let mut swapped = good.clone();
        swapped[1] = 0x02;
        assert!(matches!(
            Handover::parse(&swapped),
            Err(Error::UnexpectedKey {
                expected: 1,
                actual: 2
            })
        ));
        let mut text_key = good.clone();
        text_key[1] = 0x60; // "" instead of 1: the next byte is then a new item
        assert!(matches!(
            Handover::parse(&text_key),
            Err(Error::WrongType { .. })
        ));
        let mut tstr_cdi = good.clone();
        tstr_cdi[2] = 0x78;
        assert!(matches!(
            Handover::parse(&tstr_cdi),
            Err(Error::WrongType {
                field: "CDI_Attest",
                ..
            })
        ));
    }

    #[test]
    fn handover_main_flow_starts_then_extends() {
        let first = android_handover_main_flow(
            &Handover {
                cdis: cdis(),
                chain: None,
            },
            &InputValues {
                mode: Mode::Normal,
                ..Default::default()
            },
        )
        .unwrap();
        let second = android_handover_main_flow(&first, &InputValues::default()).unwrap();
        let b = second.to_bytes();
        assert_eq!(b[0], 0xa3);
        let back = Handover::parse(&b).unwrap();
        assert_eq!(back, second);
        let entries = verify_chain(back.chain.as_deref().unwrap()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].mode, Mode::Normal);
        assert_eq!(
            entries[0].issuer,
            crate::derive::id_hex(
                crate::keypair_from_cdi(&cdis().cdi_attest)
                    .verifying_key()
                    .as_bytes()
            )
        );
    }
}
