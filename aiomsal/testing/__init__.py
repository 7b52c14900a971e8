"""Test helpers for aiomsal and for the test suites of its users.

:class:`FakeAuthority` is a fake Microsoft Entra ID serving on 127.0.0.1;
:class:`VirtualClock` lets tests simulate hours of token lifetimes in
milliseconds. Pass the same clock to the applications and to the fake.
"""

from ._certificates import TestCertificate as TestCertificate
from ._certificates import generate_certificate as generate_certificate
from ._drive import drive as drive
from ._fake_authority import FakeAuthority as FakeAuthority
from ._fake_authority import FaultKind as FaultKind
from ._fake_authority import TokenRequestRecord as TokenRequestRecord
from ._fake_managed_identity import FakeManagedIdentityEndpoint as FakeManagedIdentityEndpoint
from ._fake_managed_identity import ManagedIdentityFault as ManagedIdentityFault
from ._fake_managed_identity import ManagedIdentityRequestRecord as ManagedIdentityRequestRecord
from ._fake_managed_identity import RegisteredIdentity as RegisteredIdentity
from ._fake_mi_sources import FakeAppService as FakeAppService
from ._fake_mi_sources import FakeAzureArc as FakeAzureArc
from ._fake_mi_sources import FakeAzureML as FakeAzureML
from ._fake_mi_sources import FakeCloudShell as FakeCloudShell
from ._fake_mi_sources import FakeImds as FakeImds
from ._fake_mi_sources import FakeServiceFabric as FakeServiceFabric
from ._fake_users import FakeUser as FakeUser
from ._virtual_clock import VirtualClock as VirtualClock

__all__ = [
    "FakeAppService",
    "FakeAuthority",
    "FakeAzureArc",
    "FakeAzureML",
    "FakeCloudShell",
    "FakeImds",
    "FakeManagedIdentityEndpoint",
    "FakeServiceFabric",
    "FakeUser",
    "FaultKind",
    "ManagedIdentityFault",
    "ManagedIdentityRequestRecord",
    "RegisteredIdentity",
    "TestCertificate",
    "TokenRequestRecord",
    "VirtualClock",
    "drive",
    "generate_certificate",
]
