select
    member_id,
    full_name,
    cast(joined_at as date) as joined_at,
    tier
from {{ ref('members') }}
