"""How the tests reach the simulator: its credentials and the API root they are accepted at."""

from __future__ import annotations

import base64

from simulators.connectwise import ApiCredentials

CREDENTIALS = ApiCredentials(
    company_id="acme", public_key="pub-key", private_key="priv-key", member="psasync-api"
)
AUTHORIZATION = "Basic " + base64.b64encode(b"acme+pub-key:priv-key").decode()
API_ROOT = "http://cw.test/v4_6_release/apis/3.0/"
