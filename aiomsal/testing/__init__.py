"""Test helpers for aiomsal and for the test suites of its users.

:class:`FakeAuthority` is a fake Microsoft Entra ID serving on 127.0.0.1;
:class:`VirtualClock` lets tests simulate hours of token lifetimes in
milliseconds. Pass the same clock to the applications and to the fake.
"""

from ._certificates import TestCertificate as TestCertificate
from ._certificates import generate_certificate as generate_certificate
from ._fake_authority import FakeAuthority as FakeAuthority
from ._fake_authority import FaultKind as FaultKind
from ._fake_authority import TokenRequestRecord as TokenRequestRecord
from ._fake_users import FakeUser as FakeUser
from ._virtual_clock import VirtualClock as VirtualClock

__all__ = [
    "FakeAuthority",
    "FakeUser",
    "FaultKind",
    "TestCertificate",
    "TokenRequestRecord",
    "VirtualClock",
    "generate_certificate",
]
