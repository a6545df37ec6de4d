"""pi_client: a PI Web API client that returns Arrow. It imports no Spark.

The public surface::

    PiClient, Limits, RetryPolicy                       # a session and its settings
    Anonymous, Basic, Bearer, OidcClientCredentials, Kerberos
    Tag, read_recorded, read_interpolated, read_summaries, ReadResult
    data_servers, find_points, points_by_path, points_by_web_id
    asset_servers, asset_databases, find_database, elements, attributes, element_templates, points_from_af
    find_event_frames, owner_values
    updates.register, updates.poll, updates.changes_since, updates.recorded_since
    channels.open_channel                               # WebSocket push (asyncio)
    schemas                                             # every Arrow schema, declared once

Errors: PiError and its subclasses PiConfigError, PiConnectionError, PiHttpError, PiAuthError,
PiDecodeError.
"""

from . import channels, schemas, updates
from .auth import Anonymous, Basic, Bearer, Kerberos, OidcClientCredentials
from .catalog import (Lookup, asset_databases, asset_servers, attributes, data_servers, element_templates, elements,
                      find_data_server, find_database, find_points, points_by_path, points_by_web_id, points_from_af)
from .client import Limits, PiClient
from .errors import PiAuthError, PiConfigError, PiConnectionError, PiDecodeError, PiError, PiHttpError
from .event_frames import SEARCH_MODES, find_event_frames, owner_values
from .streamsets import ReadResult, Tag
from .timeseries import read_interpolated, read_recorded, read_summaries
from .times import to_ns, to_pi_time
from .transport import RetryPolicy

__all__ = [
    "Anonymous", "Basic", "Bearer", "Kerberos", "Limits", "Lookup", "OidcClientCredentials", "PiAuthError",
    "PiClient", "PiConfigError", "PiConnectionError", "PiDecodeError", "PiError", "PiHttpError", "ReadResult",
    "RetryPolicy", "SEARCH_MODES", "Tag", "asset_databases", "asset_servers", "attributes", "data_servers", "find_data_server",
    "element_templates", "elements", "find_database", "find_event_frames", "find_points", "owner_values",
    "points_by_path", "points_by_web_id", "points_from_af", "read_interpolated", "read_recorded", "read_summaries",
    "schemas", "to_ns", "to_pi_time", "updates", "channels",
]
