from datetime import date

import pytest

from crm.errors import DomainError
from crm.members import brreg
from crm.members.models import OrganisationKind
from tests.members import brreg_server as fake


def test_lookup_parses_the_register_record(fake_brreg):
    unit = brreg.lookup("974 760 673")
    assert unit.name == "REGISTERENHETEN I BRØNNØYSUND"
    assert unit.organisation_form_code == "ORGL"
    assert unit.industry_code == "84.110"
    assert unit.sector_code == "6100"
    assert unit.employees == 460
    assert unit.vat_registered is False
    assert unit.business_address.street == "Havnegata 48"
    assert unit.postal_address.city == "Brønnøysund"
    assert unit.suggested_kind is OrganisationKind.STATE_BODY
    values = unit.form_values()
    assert values["website"] == "https://www.brreg.no"
    assert values["visiting_postcode"] == "8900" and values["postal_street"] == "Postboks 900"


def test_municipality_kind_is_suggested(fake_brreg):
    assert brreg.lookup(fake.MUNICIPALITY).suggested_kind is OrganisationKind.MUNICIPALITY


def test_unknown_number(fake_brreg):
    with pytest.raises(brreg.BrregNotFound):
        brreg.lookup(fake.UNKNOWN)


def test_a_healthy_unit_has_no_warnings(fake_brreg):
    unit = brreg.lookup(fake.FOUND)
    assert (unit.bankrupt, unit.under_liquidation, unit.under_forced_dissolution, unit.deleted_on) == (
        False,
        False,
        False,
        None,
    )
    assert unit.warnings == []


def test_bankruptcy_and_winding_up_are_read_and_warned_about(fake_brreg):
    bankrupt = brreg.lookup(fake.BANKRUPT)
    assert bankrupt.bankrupt is True and bankrupt.under_liquidation is False
    assert bankrupt.warnings == ["Brønnøysundregistrene oppgir at KONKURSBO KAFFE AS er konkurs."]
    winding_up = brreg.lookup(fake.WINDING_UP)
    assert winding_up.under_liquidation is True and winding_up.under_forced_dissolution is True
    assert len(winding_up.warnings) == 2
    assert "under avvikling" in winding_up.warnings[0]
    assert "tvangsavvikling eller tvangsoppløsning" in winding_up.warnings[1]


def test_a_deletion_date_on_a_found_unit_is_a_warning():
    unit = brreg.parse_unit({"organisasjonsnummer": fake.FOUND, "navn": "SLETTET AS", "slettedato": "2025-01-31"})
    assert unit.deleted_on == date(2025, 1, 31)
    assert unit.warnings == ["SLETTET AS ble slettet fra Brønnøysundregistrene 31.01.2025."]


def test_a_sub_unit_number_is_recognised_and_its_main_unit_offered(fake_brreg):
    with pytest.raises(brreg.BrregSubUnit) as exc:
        brreg.lookup(fake.SUB_UNIT)
    assert exc.value.main_orgnr == fake.FOUND
    assert exc.value.name == "REGISTERENHETEN I BRØNNØYSUND AVD MO"
    assert "underenhet" in exc.value.message and "974 760 673" in exc.value.message
    assert fake.Handler.requests[-2:] == [
        f"/enhetsregisteret/api/enheter/{fake.SUB_UNIT}",
        f"/enhetsregisteret/api/underenheter/{fake.SUB_UNIT}",
    ]


def test_deleted_unit_reports_its_deletion_date(fake_brreg):
    with pytest.raises(brreg.BrregDeleted) as exc:
        brreg.lookup(fake.DELETED)
    assert exc.value.deleted_on == date(2021, 3, 15)
    assert "15.03.2021" in exc.value.message


@pytest.mark.parametrize("orgnr", [fake.SLOW, fake.BROKEN, fake.GARBLED])
def test_timeouts_server_errors_and_garbage_mean_unavailable(fake_brreg, orgnr):
    with pytest.raises(brreg.BrregUnavailable) as exc:
        brreg.lookup(orgnr)
    assert "Fyll inn" in exc.value.message


def test_connection_refused_means_unavailable(app):
    # The test configuration points at a closed local port.
    with pytest.raises(brreg.BrregUnavailable):
        brreg.lookup(fake.FOUND)


def test_invalid_number_is_refused_without_asking_the_register(fake_brreg):
    before = len(fake.Handler.requests)
    with pytest.raises(DomainError) as exc:
        brreg.lookup("123")
    assert exc.value.field == "orgnr"
    assert len(fake.Handler.requests) == before
