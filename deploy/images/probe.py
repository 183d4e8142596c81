"""Container health check of the fastlane image: `python /app/probe.py URL [URL...]` exits 0 when the first URL
answers 2xx. A URL answering 404 (an older image without that endpoint) hands over to the next one."""

import sys
import urllib.error
import urllib.request


def probe(urls: list[str]) -> str | None:
    """None when healthy, else why not."""
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:
                return None if 200 <= answer.status < 300 else f"{url}: {answer.status}"
        except urllib.error.HTTPError as error:
            if error.code != 404:
                return f"{url}: {error.code} {error.read(300)!r}"
        except OSError as error:
            return f"{url}: {error}"
    return f"{urls[-1]}: 404"


if __name__ == "__main__":
    problem = probe(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
    sys.exit(1 if problem else 0)
