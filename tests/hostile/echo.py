"""``python -m tests.hostile.echo CODE|sleep``: what a case's child sees (working folder, argument list, the
project's variables) on stdout, one line on stderr, then exit status CODE; ``sleep`` never ends. The
harness's tests run it through the zygote and through a fresh interpreter and compare."""
import json
import os
import sys
import time

if __name__ == "__main__":
    print(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[1:], "name": __name__,
                      "env": {k: v for k, v in os.environ.items() if k.startswith("CONDENSE_")}}))
    print("error: echo", file=sys.stderr)
    if sys.argv[1] == "sleep":
        time.sleep(3600)
    sys.exit(int(sys.argv[1]))
