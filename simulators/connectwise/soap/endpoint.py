"""HTTP for the legacy SOAP API: ``/{codebase}/apis/{1.5|2.0}/{Name}Api.asmx``.

``GET ...asmx?wsdl`` serves the contract's WSDL with the address of the request's own host;
``POST`` runs one operation. ASMX paths are case-insensitive on IIS (``ConfigurationAPI.asmx``).
A SOAP request passes the same gate as a REST one: it is counted in `Traffic`, injected latency,
rate limits (429 + Retry-After), 5xx and outages apply, and an applied write counts as a write
(and may lose its answer with ``drop_after_write_every``). Every failure is a SOAP 1.1 fault
with HTTP 500 (or the injected status), never a traceback.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from simulators.connectwise.soap.contract import SERVICES, build_wsdl
from simulators.connectwise.soap.envelope import CONTENT_TYPE, SoapFault, fault, parse_envelope
from simulators.connectwise.soap.service import IntegratorLogin, SoapApi
from simulators.races import before_write
from simulators.transport import DroppedAnswer

if TYPE_CHECKING:
    from simulators.connectwise.app import ConnectWiseSimulator

PATH = "/{codebase}/apis/{version:str}/{asmx:str}"
_CODEBASE = re.compile(r"v4_6_release|v20\d\d_\d{1,2}")
_VERSIONS = frozenset({"1.5", "2.0"})
_SERVICES = {f"{name.lower()}api.asmx": name for name in SERVICES}
_MAX_BODY = 4 * 1024 * 1024


class SoapEndpoint:
    """The SOAP routes of one simulator."""

    def __init__(self, simulator: ConnectWiseSimulator, login: IntegratorLogin) -> None:
        self.simulator = simulator
        self.api = SoapApi(simulator.store, simulator.credentials.company_id, login)

    async def serve(self, request: Request) -> Response:
        params = request.path_params
        service = _SERVICES.get(params["asmx"].lower())
        if (
            service is None
            or params["version"] not in _VERSIONS
            or not _CODEBASE.fullmatch(params["codebase"])
        ):
            return Response("The resource cannot be found.", 404, media_type="text/html")
        if request.method == "GET":
            if "wsdl" not in {k.lower() for k in request.query_params}:
                return Response(f"{service}Api web service: add ?wsdl", media_type="text/html")
            address = str(request.url.replace(query=None))
            return Response(build_wsdl(service, address), media_type=CONTENT_TYPE)
        return await self._operation(request, service)

    async def _operation(self, request: Request, service: str) -> Response:
        simulator = self.simulator
        traffic, faults = simulator.traffic, simulator.faults
        simulator.callbacks.attach(asyncio.get_running_loop())
        traffic.requests += 1
        traffic.by_method["POST"] = traffic.by_method.get("POST", 0) + 1
        if faults.latency_ms:
            await simulator.sleep(faults.latency_ms / 1000)
        status = faults.fault_for(traffic.requests)
        if status is not None:
            return self._injected(status)
        writes = False
        try:
            body = await request.body()
            if len(body) > _MAX_BODY:
                raise SoapFault("Maximum request length exceeded.", "soap:Client")
            element = parse_envelope(body)
            name = self.api.operation(service, element, request.headers.get("soapaction", ""))
            writes = SERVICES[service][name].writes
            if writes:
                await before_write(simulator.before_write, request)
            base_url = f"{request.url.scheme}://{request.url.netloc}"
            with simulator.callbacks.request_origin(base_url, request.path_params["codebase"]):
                content = self.api.handle(service, name, element)
        except SoapFault as error:
            return Response(fault(error), error.status, media_type=CONTENT_TYPE)
        except Exception as error:  # a bug of ours is still a fault, as ASMX answers one
            message = f"Server was unable to process request. ---> {error!r}"
            return Response(fault(SoapFault(message)), 500, media_type=CONTENT_TYPE)
        answer = Response(content, 200, media_type=CONTENT_TYPE)
        if writes:
            traffic.writes += 1
            if faults.drops_answer(traffic.writes):
                traffic.faults_injected += 1
                traffic.dropped_answers += 1
                return DroppedAnswer(answer)
        traffic.served += 1
        return answer

    def _injected(self, status: int) -> Response:
        traffic, faults = self.simulator.traffic, self.simulator.faults
        traffic.faults_injected += 1
        headers = {}
        if status == 429:
            traffic.rate_limited += 1
            headers["Retry-After"] = str(faults.retry_after_seconds)
            message = (
                f"Too many requests. Please try again in {faults.retry_after_seconds} seconds."
            )
        else:
            traffic.server_errors += 1
            message = "Execution Timeout Expired. The timeout period elapsed prior to completion."
        body = fault(SoapFault(message, status=status))
        return Response(body, status, headers, media_type=CONTENT_TYPE)
