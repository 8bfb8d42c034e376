-- A completed rental must have ended, and after it started.
select
    rental_id,
    started_at,
    ended_at,
    duration_minutes
from {{ ref('fct_rentals') }}
where rental_status = 'completed'
  and (ended_at is null or duration_minutes <= 0)
