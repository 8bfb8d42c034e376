-- The raw tables are seeds; source() does not know that, so declare the edge.
-- depends_on: {{ ref('raw_stations') }}

select
    id as station_id,
    name as station_name,
    city,
    docks as dock_count,
    cast(opened_at as date) as opened_on
from {{ source('bike_share_raw', 'raw_stations') }}
