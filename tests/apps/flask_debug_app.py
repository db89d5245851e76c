"""A Flask app with proxygate, for running under Flask's development server with the debugger.

``flask --app apps.flask_debug_app run --debug --no-reload --port PORT`` turns debug mode on
before the extension starts; ``python -m apps.flask_debug_app PORT`` calls
``app.run(debug=True)`` after it, as many tutorials do. Options come from
``$PROXYGATE_TEST_GATE``.
"""

from __future__ import annotations

import sys

from flask import Flask

from apps._options import gate_options
from proxygate.contrib.flask import ProxyGate

app = Flask(__name__)
ProxyGate(app, **gate_options())


@app.get("/")
def index() -> dict[str, str]:
    return {"hello": "gated"}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), debug=True, use_reloader=False)
