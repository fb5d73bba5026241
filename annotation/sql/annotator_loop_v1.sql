-- The annotator loop's two writes on PostgreSQL, each a single statement: one round trip and one transaction.
--
-- annotation/services/assignments.py and judgments.py call these on PostgreSQL and keep the same steps in Python for
-- SQLite, whose serialised path is the reference: the whole test suite runs on both (the PostgreSQL pass of .ci/run
-- exercises these functions), so the two cannot drift apart unnoticed. What is a rule rather than a step stays in
-- Python and comes in as an argument: the random draws (a cryptographic RNG), the canonical A/B choice, the gold
-- match, the "too fast" flag, and whether a split item earns another judgment (from the votes returned here).
--
-- "Not seen by this annotator" is written to be one probe of the (item, annotator) unique index per candidate,
-- whatever the statistics say (a new annotator's rows are always newer than the last ANALYZE): OFFSET 0 keeps the
-- planner from turning it into an anti join over the annotator's whole history, and "annotator_id + 0" from
-- reading the annotator's assignments through their own index and filtering by item. Each of those plans scanned
-- the annotator's history once per candidate: 0.9 ms per lease at 500 judgments, 40 ms at 2,000.
--
-- Under READ COMMITTED each statement of a volatile PL/pgSQL function takes a new snapshot, so a read that follows
-- a row lock sees everything committed before the lock was granted, as the Python path's separate queries do.
-- Installed by migration 0006; a change to them is a new file and a new migration (CREATE OR REPLACE).

-- assignment_next: the session's open lease, else a new lease, else why not.
-- status: 'open' (the open lease again), 'new', 'empty' (nothing left), 'not_found', 'task_limit', 'time_limit'.
CREATE OR REPLACE FUNCTION tandem_lease_next(
    p_session_id bigint,
    p_annotator_id integer,
    p_now timestamptz,
    p_gold_draw double precision,  -- uniform [0, 1): a gold item is wanted when it falls under the gold rate
    p_gold_pick double precision,  -- uniform [0, 1): which of the annotator's unseen gold items
    p_left_is_a boolean,
    p_new_id uuid,
    p_candidates integer,
    p_tries integer
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
    v_locked boolean;
    c_head CONSTANT integer := 64;
BEGIN
    -- One request at a time per session keeps "one open lease per session" true under concurrent tabs.
    SELECT s.* INTO v_session FROM annotation_annotationsession s
     WHERE s.id = p_session_id AND s.annotator_id = p_annotator_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found', NULL::uuid, NULL::bigint, NULL::boolean, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_session.tasks_done >= v_session.max_tasks THEN
        RETURN QUERY SELECT 'task_limit', NULL::uuid, NULL::bigint, NULL::boolean, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;

    -- A reload gets the same item, even in the session's last minute, unless its batch has closed since.
    SELECT a.id, a.item_id, a.left_is_a, a.leased_at, a.lease_expires_at, b.status AS batch_status INTO v_open
      FROM annotation_assignment a
      JOIN annotation_item i ON i.id = a.item_id
      JOIN annotation_batch b ON b.id = i.batch_id
     WHERE a.session_id = p_session_id AND a.judged_at IS NULL AND a.lease_expires_at > p_now
     LIMIT 1;
    IF FOUND AND v_open.batch_status = 'open' THEN
        RETURN QUERY SELECT 'open', v_open.id, v_open.item_id, v_open.left_is_a, v_open.leased_at,
                            v_open.lease_expires_at;
        RETURN;
    END IF;
    IF p_now >= v_session.expires_at THEN
        RETURN QUERY SELECT 'time_limit', NULL::uuid, NULL::bigint, NULL::boolean, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;

    SELECT p.* INTO v_project FROM annotation_project p WHERE p.id = v_session.project_id;

    -- Gold has no overlap cap: every annotator may meet each gold item once. A gold draw falls back to a regular
    -- item; a regular draw never falls back to gold, so gold stays a sample at the project's rate.
    IF v_project.gold_rate > 0 AND p_gold_draw < v_project.gold_rate THEN
        SELECT array_agg(g.id) INTO v_gold FROM (
            SELECT i.id FROM annotation_item i JOIN annotation_batch b ON b.id = i.batch_id
             WHERE i.project_id = v_project.id AND b.status = 'open' AND i.gold > ''
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

    -- Regular items: oldest open batch first, so batches finish one after another; within a batch the head of the
    -- item_queue index, closest to complete first, then the rest of the queue from its fresh end. Candidates are
    -- locked (SKIP LOCKED: others' candidates are passed over, not waited for) and their open leases recounted
    -- under the lock, in a statement of its own: the queue's snapshot may predate a lease committed since.
    IF v_item IS NULL THEN
        <<batches>>
        FOR v_batch IN
            SELECT b.id FROM annotation_batch b
             WHERE b.project_id = v_project.id AND b.status = 'open'
             ORDER BY b.created_at, b.id
        LOOP
            FOR attempt IN 1..p_tries LOOP
                v_locked := false;
                -- The head of the queue: the c_head items closest to complete.
                FOR v_candidate IN
                    SELECT i.id, i.judgment_count - i.extra_judgments AS counted FROM annotation_item i
                     WHERE i.id IN (
                           SELECT head.id FROM annotation_item head
                            WHERE head.batch_id = v_batch.id AND head.gold = ''
                              AND head.judgment_count - head.extra_judgments < v_project.overlap
                            ORDER BY head.judgment_count - head.extra_judgments DESC, head.id
                            LIMIT c_head
                       )
                       AND NOT EXISTS (
                           SELECT 1 FROM annotation_assignment seen
                            WHERE seen.item_id = i.id AND seen.annotator_id + 0 = p_annotator_id
                           OFFSET 0
                       )
                       AND i.judgment_count - i.extra_judgments + (
                           SELECT count(*) FROM annotation_assignment lease
                            WHERE lease.item_id = i.id AND lease.judged_at IS NULL AND lease.lease_expires_at > p_now
                       ) < v_project.overlap
                     ORDER BY i.judgment_count - i.extra_judgments DESC, i.id
                     LIMIT p_candidates
                       FOR UPDATE OF i SKIP LOCKED
                LOOP
                    v_locked := true;
                    SELECT count(*) INTO v_leases FROM annotation_assignment lease
                     WHERE lease.item_id = v_candidate.id AND lease.judged_at IS NULL AND lease.lease_expires_at > p_now;
                    IF v_candidate.counted + v_leases < v_project.overlap THEN
                        v_item := v_candidate.id;
                        EXIT batches;
                    END IF;
                END LOOP;
                -- Nothing for this annotator at the head: the rest of the queue, from its other end. An annotator who
                -- has judged many items that others have not finished finds the head full of their own; reading past
                -- them on every lease cost 10 ms a lease at 1,000 (a lone annotator on a project with overlap 3).
                -- From the fresh end the first candidates are items no one has seen.
                FOR v_candidate IN
                    SELECT i.id, i.judgment_count - i.extra_judgments AS counted FROM annotation_item i
                     WHERE i.batch_id = v_batch.id AND i.gold = ''
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
                     ORDER BY i.judgment_count - i.extra_judgments ASC, i.id DESC
                     LIMIT p_candidates
                       FOR UPDATE OF i SKIP LOCKED
                LOOP
                    v_locked := true;
                    SELECT count(*) INTO v_leases FROM annotation_assignment lease
                     WHERE lease.item_id = v_candidate.id AND lease.judged_at IS NULL AND lease.lease_expires_at > p_now;
                    IF v_candidate.counted + v_leases < v_project.overlap THEN
                        v_item := v_candidate.id;
                        EXIT batches;
                    END IF;
                END LOOP;
                IF NOT v_locked THEN
                    -- Nothing free, not even behind someone else's lock: this batch is done for this annotator.
                    PERFORM 1 FROM annotation_item i
                     WHERE i.batch_id = v_batch.id AND i.gold = ''
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
                     LIMIT 1;
                    EXIT WHEN NOT FOUND;
                END IF;
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


-- judgment_submit's writes, after Python has read the assignment and validated the answer.
-- status: 'created', 'exists' (the assignment has a judgment: Python compares it), 'not_found', 'lease_expired',
-- 'batch_closed', 'overlap_full'. With 'created': the new judgment's id, the item's judgment_count and
-- extra_judgments after the count, and, when this judgment completes a regular item, its votes by choice.
CREATE OR REPLACE FUNCTION tandem_record_judgment(
    p_assignment_id uuid,
    p_annotator_id integer,
    p_now timestamptz,
    p_choice text,
    p_shown_left text,
    p_dimensions jsonb,
    p_justification text,
    p_seconds double precision,
    p_too_fast boolean,
    p_is_gold boolean,
    p_gold_correct boolean,
    p_overlap integer  -- the item's cap before extra judgments; NULL for gold items, which have none
) RETURNS TABLE (
    status text,
    judgment_id bigint,
    judgment_count bigint,
    extra_judgments bigint,
    votes jsonb
) LANGUAGE plpgsql ROWS 1 AS $$
#variable_conflict use_column
DECLARE
    v_assignment record;
    v_item record;
    v_count bigint;
    v_extra bigint;
    v_id bigint;
    v_votes jsonb;
BEGIN
    -- Locked: FOR UPDATE waits for a concurrent submit of the same assignment and reads its outcome.
    SELECT a.item_id, a.session_id, a.judged_at, a.lease_expires_at INTO v_assignment
      FROM annotation_assignment a
     WHERE a.id = p_assignment_id AND a.annotator_id = p_annotator_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found', NULL::bigint, NULL::bigint, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;
    IF v_assignment.judged_at IS NOT NULL THEN
        RETURN QUERY SELECT 'exists', NULL::bigint, NULL::bigint, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;
    IF p_now > v_assignment.lease_expires_at THEN
        RETURN QUERY SELECT 'lease_expired', NULL::bigint, NULL::bigint, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;
    SELECT i.batch_id, b.status INTO v_item
      FROM annotation_item i JOIN annotation_batch b ON b.id = i.batch_id
     WHERE i.id = v_assignment.item_id;
    IF v_item.status <> 'open' THEN
        RETURN QUERY SELECT 'batch_closed', NULL::bigint, NULL::bigint, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;

    -- The cap, held by a conditional UPDATE: it takes the item's row lock and re-checks the condition on the
    -- current row, so two submits cannot both take an item's last slot.
    UPDATE annotation_item i SET judgment_count = i.judgment_count + 1
     WHERE i.id = v_assignment.item_id
       AND (p_overlap IS NULL OR i.judgment_count < p_overlap + i.extra_judgments)
    RETURNING i.judgment_count, i.extra_judgments INTO v_count, v_extra;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'overlap_full', NULL::bigint, NULL::bigint, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;

    INSERT INTO annotation_judgment (
        assignment_id, item_id, batch_id, annotator_id, choice, shown_left, dimensions, justification, seconds,
        too_fast, is_gold, gold_correct, created_at
    ) VALUES (
        p_assignment_id, v_assignment.item_id, v_item.batch_id, p_annotator_id, p_choice, p_shown_left, p_dimensions,
        p_justification, p_seconds, p_too_fast, p_is_gold, p_gold_correct, p_now
    ) RETURNING id INTO v_id;
    UPDATE annotation_assignment a SET judged_at = p_now WHERE a.id = p_assignment_id;
    -- One more task in the session; the one that reaches max_tasks ends it, and the break starts now.
    UPDATE annotation_annotationsession s
       SET tasks_done = CASE WHEN s.tasks_done < s.max_tasks THEN s.tasks_done + 1 ELSE s.tasks_done END,
           ended_at = CASE WHEN s.ended_at IS NULL AND s.tasks_done + 1 >= s.max_tasks THEN p_now ELSE s.ended_at END
     WHERE s.id = v_assignment.session_id;

    -- The item is complete: its votes, under the row lock the count took, for the adaptive-overlap rule.
    IF p_overlap IS NOT NULL AND v_count >= p_overlap + v_extra THEN
        SELECT jsonb_object_agg(v.choice, v.n) INTO v_votes
          FROM (SELECT j.choice, count(*) AS n FROM annotation_judgment j WHERE j.item_id = v_assignment.item_id
                GROUP BY j.choice) v;
    END IF;
    RETURN QUERY SELECT 'created', v_id, v_count, v_extra, v_votes;
END;
$$;
