"""``recommender fit``: fit the recommender's ALS item factors offline, from the event log.

(``jewelsearch recommend USER_ID`` already answers for a shopper, hence a group of its own.)"""

from __future__ import annotations

import json

import click

from jewelsearch.cli import Context, fail


@click.group()
def recommender():
    """The recommender's offline models (ALS item factors)."""


@recommender.command("fit")
@click.option("--factors", default=32, show_default=True, type=click.IntRange(2, 512),
              help="Length of each item's factor vector.")
@click.option("--regularisation", default=None, type=click.FloatRange(0.0, 1e6, min_open=True),
              help="ALS regularisation (default: the value chosen by `eval recommend`).")
@click.option("--iterations", default=15, show_default=True, type=click.IntRange(1, 200))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def fit(obj: Context, factors, regularisation, iterations, as_json):
    """Fit ALS item factors on every recorded event and save them beside the catalog; the
    server reads them for its "shoppers with your taste" source from its next request, when
    `[blend] factors` is above 0 (1.0 by default; without a fit the source is absent).

    Needs no model. Run it again after events accumulate (nightly, say) and after an erasure,
    which deletes the factors because they were fitted on the erased shopper's events."""
    from jewelsearch.recommend.factors import DEFAULT_REGULARISATION, FactorsError
    from jewelsearch.search.fitted_factors import FitOverlapError, fit_factors
    catalog = obj.open_catalog()
    try:
        summary = fit_factors(catalog, factors=factors, iterations=iterations,
                              regularisation=DEFAULT_REGULARISATION if regularisation is None else regularisation)
    except (FactorsError, FitOverlapError) as exc:
        fail(str(exc))
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"fitted {summary['factors']} factors for {summary['items']} items from {summary['events']} events "
               f"of {summary['shoppers']} shoppers: {summary['path']}")
