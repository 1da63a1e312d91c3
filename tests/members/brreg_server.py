"""A local HTTP server that answers like Enhetsregisteret's ``/enheter/{orgnr}`` and ``/underenheter/{orgnr}``
endpoints."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from crm.members.orgnr import generate_orgnr

FOUND = "974760673"
MUNICIPALITY = "988077917"
UNKNOWN = "923609016"
DELETED = generate_orgnr(1, base=70_000_000)
SLOW = generate_orgnr(2, base=70_000_000)
BROKEN = generate_orgnr(3, base=70_000_000)
GARBLED = generate_orgnr(4, base=70_000_000)
BANKRUPT = generate_orgnr(5, base=70_000_000)
WINDING_UP = generate_orgnr(6, base=70_000_000)  # under avvikling and under tvangsavvikling at once
SUB_UNIT = generate_orgnr(7, base=70_000_000)  # a branch of FOUND

UNITS = {
    FOUND: {
        "organisasjonsnummer": FOUND,
        "navn": "REGISTERENHETEN I BRØNNØYSUND",
        "organisasjonsform": {"kode": "ORGL", "beskrivelse": "Organisasjonsledd"},
        "hjemmeside": "www.brreg.no",
        "postadresse": {
            "land": "Norge",
            "landkode": "NO",
            "postnummer": "8910",
            "poststed": "BRØNNØYSUND",
            "adresse": ["Postboks 900"],
        },
        "registrertIMvaregisteret": False,
        "naeringskode1": {"kode": "84.110", "beskrivelse": "Generell offentlig administrasjon"},
        "antallAnsatte": 460,
        "overordnetEnhet": "912660680",
        "forretningsadresse": {
            "land": "Norge",
            "landkode": "NO",
            "postnummer": "8900",
            "poststed": "BRØNNØYSUND",
            "adresse": ["Havnegata 48"],
        },
        "institusjonellSektorkode": {"kode": "6100", "beskrivelse": "Statsforvaltningen"},
    },
    MUNICIPALITY: {
        "organisasjonsnummer": MUNICIPALITY,
        "navn": "FJORDBY KOMMUNE",
        "organisasjonsform": {"kode": "KOMM", "beskrivelse": "Kommune"},
        "antallAnsatte": 2100,
        "registrertIMvaregisteret": True,
        "forretningsadresse": {"landkode": "NO", "postnummer": "5700", "poststed": "VOSS", "adresse": ["Rådhuset"]},
    },
}

UNITS[BANKRUPT] = {
    "organisasjonsnummer": BANKRUPT,
    "navn": "KONKURSBO KAFFE AS",
    "organisasjonsform": {"kode": "AS", "beskrivelse": "Aksjeselskap"},
    "konkurs": True,
    "konkursdato": "2026-09-01",
    "underAvvikling": False,
    "underTvangsavviklingEllerTvangsopplosning": False,
}
UNITS[WINDING_UP] = {
    "organisasjonsnummer": WINDING_UP,
    "navn": "AVVIKLING TEKSTIL AS",
    "organisasjonsform": {"kode": "AS", "beskrivelse": "Aksjeselskap"},
    "konkurs": False,
    "underAvvikling": True,
    "underAvviklingDato": "2026-08-01",
    "underTvangsavviklingEllerTvangsopplosning": True,
}
SUB_UNITS = {
    SUB_UNIT: {
        "organisasjonsnummer": SUB_UNIT,
        "navn": "REGISTERENHETEN I BRØNNØYSUND AVD MO",
        "organisasjonsform": {"kode": "BEDR", "beskrivelse": "Underenhet til næringsdrivende og offentlig forvaltning"},
        "overordnetEnhet": FOUND,
    }
}


class Handler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format, *args):  # keep the test output quiet
        pass

    def _send(self, status: int, body: dict | None = None) -> None:
        payload = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        Handler.requests.append(self.path)
        orgnr = self.path.rstrip("/").rsplit("/", 1)[-1]
        if self.path.startswith("/enhetsregisteret/api/underenheter/"):
            if orgnr in SUB_UNITS:
                return self._send(200, SUB_UNITS[orgnr])
            return self._send(404, {"feilmelding": "Ingen underenhet med organisasjonsnummer " + orgnr})
        if not self.path.startswith("/enhetsregisteret/api/enheter/"):
            return self._send(404)
        if orgnr in UNITS:
            return self._send(200, UNITS[orgnr])
        if orgnr == DELETED:
            return self._send(410, {"organisasjonsnummer": DELETED, "slettedato": "2021-03-15"})
        if orgnr == SLOW:
            time.sleep(1.0)
            return self._send(200, UNITS[FOUND])
        if orgnr == BROKEN:
            return self._send(500, {"feilmelding": "Intern feil"})
        if orgnr == GARBLED:
            payload = b"<html>maintenance</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return None
        return self._send(404, {"feilmelding": "Ingen enhet med organisasjonsnummer " + orgnr})


class FakeBrreg:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/enhetsregisteret/api/enheter"

    def __enter__(self) -> FakeBrreg:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
