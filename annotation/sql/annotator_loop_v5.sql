-- tandem_lease_next, version 5: version 4 (annotator_loop_v4.sql, migration 0013) with demonstration sessions
-- (issue 15). A comparison session never gets an item of a demonstration batch (annotation_batch.kind =
-- 'demonstration': prompts that annotators answer in writing) nor of a labelled source (kind 'labelled': already
-- judged data, closed on import and served to nobody), gold or regular. A session of another kind
-- (annotation_annotationsession.kind = 'demonstration') gets status 'python' before anything else is read, as the
-- qualification gate's 'qualify' does: the Python steps (annotation/services/assignments.py) serve it the items of
-- open demonstration batches, each up to its batch's writers_per_item. Everything else, the serving order and its
-- reasons included, is version 4's: read the top of annotator_loop_v2.sql, annotator_loop_v3.sql and
-- annotator_loop_v4.sql.
--
-- Installed by migration 0017; a change to this function is a new file and a new migration.

-- assignment_next: the session's open lease, else a new lease, else why not.
-- status: 'open' (the open lease again), 'new', 'empty' (nothing left), 'not_found', 'task_limit', 'time_limit',
-- 'qualify' (not qualified yet: the Python service answers), 'python' (not a comparison session: the Python steps
-- answer).
CREATE OR REPLACE FUNCTION tandem_lease_next(
    p_session_id bigint,
    p_annotator_id integer,
    p_now timestamptz,
    p_gold_draw double precision,  -- uniform [0, 1): a gold item is wanted when it falls under the gold rate
    p_gold_pick double precision,  -- uniform [0, 1): which of the annotator's unseen gold items
    p_left_is_a boolean,
    p_new_id uuid,
    p_candidates integer,
    p_tries integer,
    p_draws bigint[]  -- uniform integers in [0, 2^62): the last picks a place in the open list, the others are probes
) RETURNS TABLE (
    status text,
    assignment_id uuid,
    item_id bigint,
    left_is_a boolean,
    leased_at timestamptz,
    lease_expires_at timestamptz
) LANGUAGE plpgsql ROWS 1 AS $$
#variable_conflict use_column
DECLARE
    v_session annotation_annotationsession%ROWTYPE;
    v_project annotation_project%ROWTYPE;
    v_open record;
    v_batch record;
    v_candidate record;
    v_gold bigint[];
    v_item bigint;
    v_leases bigint;
    v_lo bigint;
    v_hi bigint;
    v_takeable bigint[];
    v_probes integer := array_length(p_draws, 1) - 1;
BEGIN
    -- One request at a time per session keeps "one open lease per session" true under concurrent tabs.
    SELECT s.* INTO v_session FROM annotation_annotationsession s
     WHERE s.id = p_session_id AND s.annotator_id = p_annotator_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found', NULL::uuid, NULL::bigint, NULL::boolean, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_session.kind <> 'comparison' THEN
        RETURN QUERY SELECT 'python', NULL::uuid, NULL::bigint, NULL::boolean, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_session.tasks_done >= v_session.max_tasks THEN
        RETURN QUERY SELECT 'task_limit', NULL::uuid, NULL::bigint, NULL::boolean, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;

    SELECT p.* INTO v_project FROM annotation_project p WHERE p.id = v_session.project_id;
    IF v_project.qualification_required AND NOT EXISTS (
        SELECT 1 FROM annotation_qualificationattempt q
         WHERE q.project_id = v_project.id AND q.annotator_id = p_annotator_id AND q.passed AND q.reset_at IS NULL
    ) THEN
        RETURN QUERY SELECT 'qualify', NULL::uuid, NULL::bigint, NULL::boolean, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;

    -- A reload gets the same item, even in the session's last minute, unless its batch has closed or the item has
    -- been withdrawn since.
    SELECT a.id, a.item_id, a.left_is_a, a.leased_at, a.lease_expires_at, b.status AS batch_status,
           i.withdrawn_at INTO v_open
      FROM annotation_assignment a
      JOIN annotation_item i ON i.id = a.item_id
      JOIN annotation_batch b ON b.id = i.batch_id
     WHERE a.session_id = p_session_id AND a.judged_at IS NULL AND a.lease_expires_at > p_now
     LIMIT 1;
    IF FOUND AND v_open.batch_status = 'open' AND v_open.withdrawn_at IS NULL THEN
        RETURN QUERY SELECT 'open', v_open.id, v_open.item_id, v_open.left_is_a, v_open.leased_at,
                            v_open.lease_expires_at;
        RETURN;
    END IF;
    IF p_now >= v_session.expires_at THEN
        RETURN QUERY SELECT 'time_limit', NULL::uuid, NULL::bigint, NULL::boolean, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;


    -- Gold has no overlap cap: every annotator may meet each gold item once. A gold draw falls back to a regular
    -- item; a regular draw never falls back to gold, so gold stays a sample at the project's rate.
    IF v_project.gold_rate > 0 AND p_gold_draw < v_project.gold_rate THEN
        SELECT array_agg(g.id) INTO v_gold FROM (
            SELECT i.id FROM annotation_item i JOIN annotation_batch b ON b.id = i.batch_id
             WHERE i.project_id = v_project.id AND b.status = 'open'
               AND b.kind NOT IN ('qualification', 'demonstration', 'labelled')
               AND i.gold > '' AND i.withdrawn_at IS NULL
               AND NOT EXISTS (
                   SELECT 1 FROM annotation_assignment seen WHERE seen.item_id = i.id AND seen.annotator_id + 0 = p_annotator_id
                   OFFSET 0
               )
             LIMIT 500
        ) g;
        IF v_gold IS NOT NULL THEN
            v_item := v_gold[1 + least(floor(p_gold_pick * array_length(v_gold, 1))::integer, array_length(v_gold, 1) - 1)];
        END IF;
    END IF;

    -- Regular items: oldest open batch first, so batches finish one after another; within a batch, each item the
    -- annotator may take equally likely (see the top of this file). Candidates are locked (SKIP LOCKED: others'
    -- candidates are passed over, not waited for) and their open leases recounted under the lock, in a statement of
    -- its own: the candidates' snapshot may predate a lease committed since.
    IF v_item IS NULL THEN
        <<batches>>
        FOR v_batch IN
            SELECT b.id FROM annotation_batch b
             WHERE b.project_id = v_project.id AND b.status = 'open'
               AND b.kind NOT IN ('qualification', 'demonstration', 'labelled')
             ORDER BY b.created_at, b.id
        LOOP
            -- The span of ids of the batch's regular items short of judgments: the lowest and highest id among the
            -- items of each queue key below the overlap, two probes of the item_queue index (batch, gold, key
            -- descending, id) per key. Written as "the first entry at or past key k in the index's own order" rather
            -- than "key = k, lowest id": with key = k the planner walks the primary key instead, filtering row by row
            -- (100 ms on a 20,000-item batch). Where no item has key k, the probe lands on the next key's extreme id,
            -- which the probe of that key finds anyway, so min and max are unchanged.
            SELECT min(lowest.id), max(highest.id) INTO v_lo, v_hi
              FROM generate_series(0, v_project.overlap - 1) queue_key(k)
             CROSS JOIN LATERAL (
                   SELECT i.id FROM annotation_item i
                    WHERE i.batch_id = v_batch.id AND i.gold = '' AND i.judgment_count - i.extra_judgments <= queue_key.k
                    ORDER BY i.judgment_count - i.extra_judgments DESC, i.id LIMIT 1
               ) lowest
             CROSS JOIN LATERAL (
                   SELECT i.id FROM annotation_item i
                    WHERE i.batch_id = v_batch.id AND i.gold = '' AND i.judgment_count - i.extra_judgments >= queue_key.k
                      AND i.judgment_count - i.extra_judgments < v_project.overlap
                    ORDER BY i.judgment_count - i.extra_judgments, i.id DESC LIMIT 1
               ) highest;
            CONTINUE WHEN v_lo IS NULL;  -- every regular item of the batch has its judgments
            FOR attempt IN 1..p_tries LOOP
                -- Uniform draws over the span, in the order drawn: the first that lands on an item this annotator
                -- may take is a uniform pick among those items. (The inner ORDER BY lets the join stop at the
                -- first candidates instead of evaluating every draw.)
                FOR v_candidate IN
                    SELECT i.id, i.judgment_count - i.extra_judgments AS counted
                      FROM (SELECT d.draw, d.n FROM unnest(p_draws[1:v_probes]) WITH ORDINALITY d(draw, n) ORDER BY d.n
                           ) probe
                      JOIN annotation_item i ON i.id = v_lo + probe.draw % (v_hi - v_lo + 1)
                     WHERE i.batch_id = v_batch.id AND i.gold = '' AND i.withdrawn_at IS NULL
                       AND i.judgment_count - i.extra_judgments < v_project.overlap
                       AND NOT EXISTS (
                           SELECT 1 FROM annotation_assignment seen
                            WHERE seen.item_id = i.id AND seen.annotator_id + 0 = p_annotator_id
                           OFFSET 0
                       )
                       AND i.judgment_count - i.extra_judgments + (
                           SELECT count(*) FROM annotation_assignment lease
                            WHERE lease.item_id = i.id AND lease.judged_at IS NULL AND lease.lease_expires_at > p_now
                       ) < v_project.overlap
                     ORDER BY probe.n
                     LIMIT p_candidates
                       FOR UPDATE OF i SKIP LOCKED
                LOOP
                    SELECT count(*) INTO v_leases FROM annotation_assignment lease
                     WHERE lease.item_id = v_candidate.id AND lease.judged_at IS NULL AND lease.lease_expires_at > p_now;
                    IF v_candidate.counted + v_leases < v_project.overlap THEN
                        v_item := v_candidate.id;
                        EXIT batches;
                    END IF;
                END LOOP;
                -- Every draw missed: few of the span's ids are open to this annotator. All of those, in id order,
                -- from a uniformly drawn place in the list onwards (locked ones passed over).
                SELECT array_agg(i.id ORDER BY i.id) INTO v_takeable FROM annotation_item i
                 WHERE i.batch_id = v_batch.id AND i.gold = '' AND i.withdrawn_at IS NULL
                   AND i.judgment_count - i.extra_judgments < v_project.overlap
                   AND NOT EXISTS (
                       SELECT 1 FROM annotation_assignment seen
                        WHERE seen.item_id = i.id AND seen.annotator_id + 0 = p_annotator_id
                       OFFSET 0
                   )
                   AND i.judgment_count - i.extra_judgments + (
                       SELECT count(*) FROM annotation_assignment lease
                        WHERE lease.item_id = i.id AND lease.judged_at IS NULL AND lease.lease_expires_at > p_now
                   ) < v_project.overlap;
                -- Nothing free, not even behind someone else's lock: this batch is done for this annotator.
                EXIT WHEN v_takeable IS NULL;
                FOR v_candidate IN
                    SELECT i.id, i.judgment_count - i.extra_judgments AS counted
                      FROM unnest(v_takeable) WITH ORDINALITY o(id, n)
                      JOIN annotation_item i ON i.id = o.id
                     ORDER BY (o.n - 1 + cardinality(v_takeable) - p_draws[v_probes + 1] % cardinality(v_takeable))
                              % cardinality(v_takeable)
                     LIMIT p_candidates
                       FOR UPDATE OF i SKIP LOCKED
                LOOP
                    SELECT count(*) INTO v_leases FROM annotation_assignment lease
                     WHERE lease.item_id = v_candidate.id AND lease.judged_at IS NULL AND lease.lease_expires_at > p_now;
                    IF v_candidate.counted + v_leases < v_project.overlap THEN
                        v_item := v_candidate.id;
                        EXIT batches;
                    END IF;
                END LOOP;
                -- The free rows are locked by requests about to commit.
                PERFORM pg_sleep(0.002 * attempt);
            END LOOP;
        END LOOP;
    END IF;

    IF v_item IS NULL THEN
        RETURN QUERY SELECT 'empty', NULL::uuid, NULL::bigint, NULL::boolean, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    INSERT INTO annotation_assignment (id, session_id, item_id, annotator_id, left_is_a, leased_at, lease_expires_at)
    VALUES (p_new_id, p_session_id, v_item, p_annotator_id, p_left_is_a, p_now,
            p_now + make_interval(mins => v_project.lease_minutes));
    RETURN QUERY SELECT 'new', p_new_id, v_item, p_left_is_a, p_now, p_now + make_interval(mins => v_project.lease_minutes);
END;
$$;
