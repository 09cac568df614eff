#!/usr/bin/env python3
"""Reads a binary AndroidManifest.xml with androguard's AXML parser and prints what it found as
JSON: package, versionCode, versionCodeMajor, versionName, minSdkVersion, targetSdkVersion,
hasCode (strings as androguard renders them, null when absent). Used by libs/axml/tests/oracle.rs.

Usage: androguard_manifest.py MANIFEST.bin
"""
import json
import sys

try:
    from loguru import logger

    logger.remove()  # androguard logs every chunk at DEBUG level
except ImportError:
    pass

from androguard.core.axml import AXMLPrinter

NS = "{http://schemas.android.com/apk/res/android}"


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    printer = AXMLPrinter(data)
    if not printer.is_valid():
        print(json.dumps({"valid": False}))
        return 1
    root = printer.get_xml_obj()
    uses_sdk = root.find("uses-sdk")
    application = root.find("application")
    out = {
        "valid": True,
        "root": root.tag,
        "package": root.get("package"),
        "versionCode": root.get(NS + "versionCode"),
        "versionCodeMajor": root.get(NS + "versionCodeMajor"),
        "versionName": root.get(NS + "versionName"),
        "minSdkVersion": None if uses_sdk is None else uses_sdk.get(NS + "minSdkVersion"),
        "targetSdkVersion": None if uses_sdk is None else uses_sdk.get(NS + "targetSdkVersion"),
        "hasCode": None if application is None else application.get(NS + "hasCode"),
    }
    print(json.dumps(out, ensure_ascii=True, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
