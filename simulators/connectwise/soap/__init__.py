"""ConnectWise's legacy SOAP API (CompanyApi, ContactApi, ConfigurationApi) over the same store
as the REST API: one record, one id through both.

    simulator = ConnectWiseSimulator(store, integrator=IntegratorLogin("login", "password"))
    # zeep: Client(f"{base_url}/v4_6_release/apis/1.5/CompanyApi.asmx?wsdl")
    #     .service.GetCompany(
    #     credentials={"CompanyId": ..., "IntegratorLoginId": ..., "IntegratorPassword": ...},
    #     id=250)

`contract.py` holds the types and operations (and builds the WSDL), `envelope.py` the wire,
`records.py` the mapping to and from store records, `queries.py` SOAP conditions, `service.py` the
operations and `endpoint.py` the HTTP routes.
"""

from simulators.connectwise.soap.contract import SERVICES, build_wsdl
from simulators.connectwise.soap.envelope import SoapFault
from simulators.connectwise.soap.service import BAD_LOGIN, IntegratorLogin, SoapApi

__all__ = ["BAD_LOGIN", "SERVICES", "IntegratorLogin", "SoapApi", "SoapFault", "build_wsdl"]
