"""Staff pages of the membership fee schedules under /staff/members/fees: a year's schedules, editing or
creating one, and copying a year to the next with an index."""

from __future__ import annotations

from datetime import date
from functools import partial

from babel.dates import format_skeleton
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.auth.access import safe_next_url, staff_required
from crm.errors import Outcome, attempt
from crm.extensions import db
from crm.members import services
from crm.members.fee_forms import CopyFeeYearForm, FeeScheduleForm
from crm.members.fees import DEFAULT_PRO_RATA, copy_fee_schedules
from crm.members.models import FeeRuleType, FeeSchedule, MembershipCategory
from crm.members.views.blueprints import bp
from crm.members.views.common import save_form
from crm.members.views.staff import FEE_MANAGERS
from crm.request_args import FIRST_YEAR, LAST_YEAR, year_arg
from crm.submissions import create_once

RULE_TYPE_LABELS = {
    FeeRuleType.TURNOVER_STEPS: _l("Turnover steps"),
    FeeRuleType.PAYMENT_GROUPS: _l("Payment groups"),
    FeeRuleType.PER_INHABITANT: _l("Per inhabitant"),
}


def day_month(month: int, day: int) -> str:
    """ "1. juli" (bokmål) or "July 1" (English): a pro-rata date without its year."""
    return format_skeleton("MMMMd", date(2001, month, day), locale=get_locale())


def _chosen_year() -> int:
    return year_arg() or services.default_fee_year(services.today().year)


@bp.route("/fees")
@staff_required(*FEE_MANAGERS)
def fees():
    overview = services.fee_year_overview(_chosen_year())
    return render_template(
        "members/fees.html",
        overview=overview,
        copy_form=CopyFeeYearForm(),
        rule_types=FeeRuleType,
        default_pro_rata=DEFAULT_PRO_RATA,
        day_month=day_month,
        first_year=FIRST_YEAR,
        last_year=LAST_YEAR,
    )


def _rule_type_for_new(category: MembershipCategory) -> FeeRuleType:
    try:
        return FeeRuleType(request.args.get("rule_type", ""))
    except ValueError:
        return services.suggested_rule_type(category)


@bp.route("/fees/<int:year>/<int:category_id>", methods=["GET", "POST"])
@staff_required(*FEE_MANAGERS)
def edit_fee_schedule(year: int, category_id: int):
    if not FIRST_YEAR <= year <= LAST_YEAR:
        abort(404)
    category = db.get_or_404(MembershipCategory, category_id)
    schedule = services.find_fee_schedule(year, category.id)
    rule_type = schedule.rule_type if schedule is not None else _rule_type_for_new(category)
    form = _fee_schedule_form(schedule, rule_type, current=request.method == "GET")
    saved = Outcome(ok=False)
    if form.validate_on_submit():
        creating = schedule is None or not form.opened_version  # the form was opened as a new schedule
        if not creating:
            saved = save_form(
                form,
                lambda: services.update_fee_schedule(
                    schedule, form.to_input(), actor=current_user, version=form.opened_version
                ),
            )
        else:  # a new schedule; sent again, it finds the one its first sending created
            create = partial(
                services.create_fee_schedule, year, category, rule_type, form.to_input(), actor=current_user
            )
            saved = save_form(form, lambda: create_once(form.submission.data, FeeSchedule, create))
        if saved.ok:
            names = {"category": category.name, "year": year}
            if creating:
                flash(_("The fee schedule of %(category)s for %(year)s was created.", **names), "success")
            elif saved.result:
                flash(_("The fee schedule of %(category)s for %(year)s was saved.", **names), "success")
            else:
                flash(_("Nothing was changed."), "info")
            return redirect(url_for("members.fees", year=year, _anchor=f"category-{category.id}"))
        if saved.stale:
            form = _fee_schedule_form(schedule, rule_type, current=True)
    return render_template(
        "members/fee_schedule_form.html",
        form=form,
        year=year,
        category=category,
        schedule=schedule,
        rule_type=rule_type,
        rule_types=FeeRuleType,
        rule_type_labels=RULE_TYPE_LABELS,
    ), saved.status


def _fee_schedule_form(schedule: FeeSchedule | None, rule_type: FeeRuleType, *, current: bool) -> FeeScheduleForm:
    """The posted form, or (``current``: on GET, or after a refused save) the saved schedule with blank rows. A
    post without the version field (a page from before) is checked against the schedule's own version."""
    data = {"version": schedule.version} if schedule is not None else None
    if not current:
        return FeeScheduleForm(data=data)
    form = FeeScheduleForm(formdata=None, data=data)
    if schedule is not None:
        form.fill(rule_type, schedule.rule, schedule.pro_rata or DEFAULT_PRO_RATA, schedule.group_discount_percent)
    else:
        form.fill(rule_type, {}, DEFAULT_PRO_RATA, 0)
    return form


@bp.route("/fees/<int:year>/copy", methods=["POST"])
@staff_required(*FEE_MANAGERS)
def copy_fee_year(year: int):
    form = CopyFeeYearForm()
    if not form.validate_on_submit():
        flash(" ".join(str(error) for error in form.index_percent.errors) or _("Check the index."), "danger")
        return redirect(safe_next_url(url_for("members.fees", year=year)))
    index = form.index_percent.data
    # The submission records the first copy; sent again, the form finds it instead of "already exist".
    copy = partial(copy_fee_schedules, year, year + 1, index, actor=current_user)
    copied = attempt(lambda: create_once(form.submission.data, FeeSchedule, lambda: copy()[0]))
    if not copied.ok:
        return redirect(safe_next_url(url_for("members.fees", year=year)))
    flash(
        _(
            "%(count)s fee schedules were copied from %(from_year)s to %(to_year)s with an index of %(index)s %%.",
            count=len(services.fee_year_overview(year + 1).schedules),
            from_year=year,
            to_year=year + 1,
            index=str(index).replace(".", ","),
        ),
        "success",
    )
    # The copy is offered on the fee page and on the billing preview of the new year; back to where it was asked.
    return redirect(safe_next_url(url_for("members.fees", year=year + 1)))
