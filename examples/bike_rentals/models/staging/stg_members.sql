-- The raw tables are seeds; source() does not know that, so declare the edge.
-- depends_on: {{ ref('raw_members') }}

select
    id as member_id,
    full_name as member_name,
    lower(email) as email,
    plan as membership_plan,
    cast(joined_at as date) as joined_on,
    -- the app lets riders type anything here: `unknown`, or nothing
    try_cast(birth_year as integer) as birth_year
from {{ source('bike_share_raw', 'raw_members') }}
