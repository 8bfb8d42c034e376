select
    id as rental_id,
    bike_id,
    member_id,
    start_station_id,
    end_station_id,
    cast(started_at as timestamp) as started_at,
    cast(ended_at as timestamp) as ended_at,
    status as rental_status
from {{ ref('raw_rentals') }}
