"""Verifies captured webhook deliveries with the standardwebhooks package (an
implementation independent of ours). Input: a JSON file with a list of
{"secret", "headers", "body", "valid"}; each must verify exactly when `valid`
is true. Prints one line per case; exits 1 on any mismatch."""

import json
import sys

from standardwebhooks import Webhook


def main(path):
    cases = json.load(open(path))
    bad = 0
    for i, case in enumerate(cases):
        try:
            Webhook(case["secret"]).verify(case["body"], case["headers"])
            verified = True
        except Exception as error:  # the library raises WebhookVerificationError
            verified = False
            reason = repr(error)
        ok = verified == case["valid"]
        bad += not ok
        print(f"case {i}: {'ok' if ok else 'MISMATCH'} (verified={verified}, expected={case['valid']}{'' if verified else ', ' + reason})")
    print(f"{len(cases)} cases, {bad} mismatches")
    sys.exit(1 if bad or not cases else 0)


if __name__ == "__main__":
    main(sys.argv[1])
