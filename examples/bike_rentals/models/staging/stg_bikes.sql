select
    id as bike_id,
    serial_number,
    bike_type,
    cast(purchased_on as date) as purchased_on,
    home_station_id
from {{ ref('raw_bikes') }}
