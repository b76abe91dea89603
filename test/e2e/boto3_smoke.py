#!/usr/bin/python3
"""Smoke test of kmsd with boto3 (Debian's python3-boto3, 1.26).

    python3 boto3_smoke.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY [REGION]

Prints one line per check and "boto3 ok" at the end; raises (exit 1) on the
first failure. awscli.sh runs it under `env -i`, so no ~/.aws configuration
or AWS_* variable of the caller can reach it.
"""

import sys

import boto3
import botocore.config
from botocore.exceptions import ClientError


def check(what, cond, detail=""):
    if not cond:
        raise AssertionError(f"{what} {detail}".strip())
    print(f"  boto3: {what}")


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    endpoint, akid, secret = sys.argv[1:4]
    region = sys.argv[4] if len(sys.argv) == 5 else "us-east-1"
    kms = boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        # A failure should show at once, not after retries.
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )

    key = kms.create_key(Description="boto3 smoke key")["KeyMetadata"]
    check("create_key", key["KeyState"] == "Enabled", repr(key))
    key_id, key_arn = key["KeyId"], key["Arn"]
    kms.create_key(Description="boto3 smoke key two")

    plaintext = bytes(range(256)) * 2
    context = {"tenant": "t1", "client": "boto3"}
    enc = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)
    check("encrypt", enc["KeyId"] == key_arn, repr(enc["KeyId"]))
    dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=context)
    check("decrypt returns the plaintext", dec["Plaintext"] == plaintext)
    check("decrypt KeyId", dec["KeyId"] == key_arn, repr(dec["KeyId"]))
    try:
        kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"tenant": "t2"})
        raise AssertionError("decrypt with a wrong context succeeded")
    except ClientError as e:
        code = e.response["Error"]["Code"]
        check("decrypt with a wrong context -> InvalidCiphertextException",
              code == "InvalidCiphertextException", code)

    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    check("generate_data_key length", len(dk["Plaintext"]) == 32, str(len(dk["Plaintext"])))
    dec = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=context)
    check("data key decrypts to its Plaintext", dec["Plaintext"] == dk["Plaintext"])

    all_keys = sorted(k["KeyArn"] for k in kms.list_keys()["Keys"])
    paged, pages, marker = [], 0, None
    while True:
        args = {"Limit": 1}
        if marker:
            args["Marker"] = marker
        page = kms.list_keys(**args)
        pages += 1
        if len(page["Keys"]) != 1:
            raise AssertionError(f"list_keys Limit=1 returned {len(page['Keys'])} keys")
        paged += [k["KeyArn"] for k in page["Keys"]]
        if not page.get("Truncated"):
            check("last list_keys page has no NextMarker", "NextMarker" not in page, repr(page))
            break
        marker = page["NextMarker"]
        if pages > len(all_keys) + 1:
            raise AssertionError("list_keys pagination does not end")
    check(f"list_keys Limit=1 pagination ({pages} pages)",
          sorted(paged) == all_keys and pages == len(all_keys) and len(all_keys) >= 2,
          f"paged={paged} all={all_keys}")
    check("the new key is listed", key_arn in all_keys)

    try:
        kms.describe_key(KeyId="00000000-0000-0000-0000-000000000000")
        raise AssertionError("describe_key of a missing key succeeded")
    except ClientError as e:
        code = e.response["Error"]["Code"]
        check("describe_key of a missing key -> NotFoundException", code == "NotFoundException", code)

    print("boto3 ok")


if __name__ == "__main__":
    main()
