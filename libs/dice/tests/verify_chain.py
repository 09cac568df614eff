#!/usr/bin/env python3
"""Independent oracle for libs/dice: verifies an Android DICE chain and recomputes CDIs.

    python3 tests/verify_chain.py CHAIN [INPUTS.json [HANDOVER]]

Written from the specifications (open-dice docs/specification.md and docs/android.md, RFC 9052
COSE_Sign1, RFC 8032 Ed25519, RFC 5869 HKDF), not from the Rust code. Uses cbor2 and
cryptography (`make setup` installs both).

CHAIN is the CBOR chain [root COSE_Key, +COSE_Sign1]. For each entry it checks the Ed25519
signature over the Sig_structure with the previous key, iss/sub = hex(HKDF-SHA512(key, ID_SALT,
"ID", 20) with bit 7 cleared), the 64-byte hashes, the configuration hash, and reads the claims.

INPUTS.json, if given, holds the fixed inputs the chain was made from:
    {"uds": hex, "stages": [{"code_hash": hex, "config_descriptor": hex | "inline_config": hex,
                             "authority_hash": hex, "mode": int, "hidden": hex}, ...]}
The CDIs of every stage are recomputed (DiceMainFlow: HKDF-SHA512 with the salts below), and
every key in the chain must be the one derived from them, the root from the UDS.

HANDOVER, if given, is the handover {1: CDI_Attest, 2: CDI_Seal, 3: chain}: its keys must come
in that order, its CDIs must be the last recomputed ones and its chain must equal CHAIN.

Prints one JSON object; exits non-zero (with a message) on any failed check.
"""

import hashlib
import json
import sys

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ASYM_SALT = bytes.fromhex(
    "63B6A04D2C077FC10F639F21DA793844356CC2B0B441B3A77124035C03F8E1BE"
    "6035D31F282821A7450A02222AB1B3CFF1679B05AB1CA5D1AFFB789CCD2B0B3B"
)
ID_SALT = bytes.fromhex(
    "DBDBAEBC8020DA9FF0DD5A24C83AA5A54286DFC263031E329B4DA148430659FE"
    "62CDB5B7E1E00FC680306711EB444AF77209359496FCFF1DB9520BA51C7B29EA"
)

ISS, SUB = 1, 2
CODE_HASH, CODE_DESC = -4670545, -4670546
CONFIG_HASH, CONFIG_DESC = -4670547, -4670548
AUTH_HASH, AUTH_DESC = -4670549, -4670550
MODE, SUBJECT_KEY, KEY_USAGE, PROFILE = -4670551, -4670552, -4670553, -4670554
COMPONENT_NAME = -70002


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def kdf(length, ikm, salt, info):
    return HKDF(algorithm=hashes.SHA512(), length=length, salt=salt, info=info).derive(ikm)


def sha512(b):
    return hashlib.sha512(b).digest()


def cert_id_hex(public_key):
    i = bytearray(kdf(20, public_key, ID_SALT, b"ID"))
    i[0] &= 0x7F
    return bytes(i).hex()


def public_key_from_cdi(cdi_attest):
    seed = kdf(32, cdi_attest, ASYM_SALT, b"Key Pair")
    return (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def next_cdis(cdi_attest, cdi_seal, stage):
    code_hash = bytes.fromhex(stage["code_hash"])
    if "config_descriptor" in stage:
        config = sha512(bytes.fromhex(stage["config_descriptor"]))
    else:
        config = bytes.fromhex(stage["inline_config"])
    authority_hash = bytes.fromhex(stage["authority_hash"])
    mode = bytes([stage["mode"]])
    hidden = bytes.fromhex(stage["hidden"])
    check(len(code_hash) == 64 and len(config) == 64 and len(hidden) == 64, "input sizes")
    attest_salt = sha512(code_hash + config + authority_hash + mode + hidden)
    seal_salt = sha512(authority_hash + mode + hidden)
    return (
        kdf(32, cdi_attest, attest_salt, b"CDI_Attest"),
        kdf(32, cdi_seal, seal_salt, b"CDI_Seal"),
    )


def ed25519_key(cose_key, what):
    check(isinstance(cose_key, dict), f"{what}: COSE_Key is not a map")
    check(cose_key.get(1) == 1, f"{what}: kty is not OKP")
    check(cose_key.get(3) == -8, f"{what}: alg is not EdDSA")
    check(cose_key.get(-1) == 6, f"{what}: crv is not Ed25519")
    x = cose_key.get(-2)
    check(isinstance(x, bytes) and len(x) == 32, f"{what}: x is not 32 bytes")
    return x


def verify(chain_bytes):
    chain = cbor2.loads(chain_bytes)
    check(isinstance(chain, list) and len(chain) >= 2, "chain is not an array of >= 2 items")
    prev = ed25519_key(chain[0], "root")
    root = prev
    entries = []
    for n, entry in enumerate(chain[1:], 1):
        what = f"entry {n}"
        check(isinstance(entry, list) and len(entry) == 4, f"{what}: not a COSE_Sign1")
        protected, unprotected, payload, signature = entry
        check(cbor2.loads(protected) == {1: -8}, f"{what}: protected header is not {{1: -8}}")
        check(isinstance(unprotected, dict), f"{what}: unprotected header is not a map")
        tbs = cbor2.dumps(["Signature1", protected, b"", payload])
        try:
            Ed25519PublicKey.from_public_bytes(prev).verify(signature, tbs)
        except Exception as e:  # cryptography raises InvalidSignature
            raise Failed(f"{what}: signature does not verify ({e!r})")
        claims = cbor2.loads(payload)
        check(isinstance(claims, dict), f"{what}: payload is not a map")
        check(claims[ISS] == cert_id_hex(prev), f"{what}: iss is not the issuer key's ID")
        subject = ed25519_key(cbor2.loads(claims[SUBJECT_KEY]), f"{what} subject")
        check(claims[SUB] == cert_id_hex(subject), f"{what}: sub is not the subject key's ID")
        check(len(claims[CODE_HASH]) == 64, f"{what}: codeHash size")
        check(len(claims[AUTH_HASH]) == 64, f"{what}: authorityHash size")
        check(len(claims[MODE]) == 1, f"{what}: mode size")
        check(claims[KEY_USAGE] == b"\x20", f"{what}: keyUsage is not keyCertSign")
        config = claims[CONFIG_DESC]
        if CONFIG_HASH in claims:
            check(claims[CONFIG_HASH] == sha512(config), f"{what}: configurationHash")
        try:
            descriptor = cbor2.loads(config)
        except Exception:
            descriptor = None
        name = descriptor.get(COMPONENT_NAME) if isinstance(descriptor, dict) else None
        entries.append(
            {
                "issuer": claims[ISS],
                "subject": claims[SUB],
                "code_hash": claims[CODE_HASH].hex(),
                "code_descriptor": claims[CODE_DESC].hex() if CODE_DESC in claims else None,
                "configuration_hash": claims[CONFIG_HASH].hex() if CONFIG_HASH in claims else None,
                "authority_hash": claims[AUTH_HASH].hex(),
                "authority_descriptor": claims[AUTH_DESC].hex() if AUTH_DESC in claims else None,
                "mode": claims[MODE][0],
                "component_name": name,
                "profile_name": claims.get(PROFILE),
                "subject_public_key": subject.hex(),
                "claim_keys": list(claims.keys()),
            }
        )
        prev = subject
    return chain, root, entries


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        chain_bytes = f.read()
    chain, root, entries = verify(chain_bytes)
    out = {"root_public_key": root.hex(), "entries": entries}
    if len(argv) >= 3:
        with open(argv[2]) as f:
            inputs = json.load(f)
        uds = bytes.fromhex(inputs["uds"])
        check(public_key_from_cdi(uds) == root, "root key is not the key from the UDS")
        attest, seal = uds, uds
        cdis = []
        for n, stage in enumerate(inputs["stages"], 1):
            attest, seal = next_cdis(attest, seal, stage)
            cdis.append({"cdi_attest": attest.hex(), "cdi_seal": seal.hex()})
            check(
                n <= len(entries)
                and public_key_from_cdi(attest).hex() == entries[n - 1]["subject_public_key"],
                f"entry {n}: subject key is not the key from the recomputed CDI_Attest",
            )
        check(len(inputs["stages"]) == len(entries), "one stage per entry")
        out["cdis"] = cdis
        if len(argv) >= 4:
            with open(argv[3], "rb") as f:
                handover = cbor2.loads(f.read())
            check(list(handover.keys()) == [1, 2, 3], "handover keys are not 1, 2, 3 in order")
            check(handover[1].hex() == cdis[-1]["cdi_attest"], "handover CDI_Attest")
            check(handover[2].hex() == cdis[-1]["cdi_seal"], "handover CDI_Seal")
            check(handover[3] == chain, "handover chain differs from CHAIN")
            out["handover_ok"] = True
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Failed as e:
        print(f"verify_chain.py: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
