-- The raw tables are seeds; source() does not know that, so declare the edge.
-- depends_on: {{ ref('raw_stores') }}

select
    id as store_id,
    name as store_name,
    city,
    cast(opened_at as date) as opened_on,
    seat_count
from {{ source('coffee_shop_raw', 'raw_stores') }}
