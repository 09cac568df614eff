#!/bin/sh
# Regenerates the bad payload-metadata inputs (see README.md). Needs only printf.
set -eu
cd "$(dirname "$0")/bad"
printf '\000\000'                         > truncated-length.bin
printf '\000\000\000\011\010\001'          > truncated-body.bin
printf '\200\000\000\000'                 > too-large.bin
printf '\000\020\000\001'                 > over-limit.bin
printf '\000\000\000\002\010\200'         > bad-varint.bin
printf '\000\000\000\002\032\005'         > bad-submessage-length.bin
printf '\000\000\000\003\012\001\001'     > wrong-wire-type.bin
printf '\000\000\000\003\042\001\377'     > invalid-utf8.bin
