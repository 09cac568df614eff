#!/bin/sh
# Regenerates the PUBLIC TEST signing keys in this directory. Never use them for anything real.
# The checked-in files were made with this script (OpenSSL 3.0, Debian bookworm); rerunning it
# makes new keys, which changes every signed fixture derived from them.
set -eu
cd "$(dirname "$0")"
days=36500
subj_rsa="/CN=microdroid-rs public test key (RSA 2048, NOT FOR PRODUCTION)"
subj_ec="/CN=microdroid-rs public test key (EC P-256, NOT FOR PRODUCTION)"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out testkey.pem
openssl pkcs8 -topk8 -inform PEM -outform DER -in testkey.pem -out testkey.pk8 -nocrypt
openssl req -new -x509 -key testkey.pem -out testkey.x509.pem -days "$days" -subj "$subj_rsa" \
    -set_serial 1
openssl x509 -in testkey.x509.pem -outform DER -out testkey.x509.der

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out testkey_ec.pem
openssl pkcs8 -topk8 -inform PEM -outform DER -in testkey_ec.pem -out testkey_ec.pk8 -nocrypt
openssl req -new -x509 -key testkey_ec.pem -out testkey_ec.x509.pem -days "$days" -subj "$subj_ec" \
    -set_serial 2
openssl x509 -in testkey_ec.x509.pem -outform DER -out testkey_ec.x509.der
