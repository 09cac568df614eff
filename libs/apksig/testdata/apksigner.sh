#!/bin/sh
# Regenerates testdata/apksigner/*: unsigned.apk signed by Debian's apksigner (31.0.2) with the
# public test keys, v2 + v3 + v4. The RSA output is deterministic (and byte-identical to our
# signer's signed-rsa.apk); the EC one is not (Java ECDSA is randomised).
set -eu
cd "$(dirname "$0")"
mkdir -p apksigner
for k in testkey testkey_ec; do
    apksigner sign --key "../testkeys/$k.pk8" --cert "../testkeys/$k.x509.pem" \
        --min-sdk-version 28 --v1-signing-enabled false --v2-signing-enabled true \
        --v3-signing-enabled true --v4-signing-enabled true \
        --out "apksigner/$k.apk" unsigned.apk
done
