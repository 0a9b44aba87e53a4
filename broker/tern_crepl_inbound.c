/*  tern_crepl_inbound.c - crepl: records from another DC wait for the ISR.

    Part of the crepl actor (tern_crepl.c; state in tern_crepl_priv.h). In a
    clustered DC the repl actor applies the records a peer DC ships to it
    (docs/replication.md, "Clustered DCs") only at the leader of their
    partition, through the storer like its own. The storer hands each such
    committed batch (tern_repl_batch_t, in_dc false) to us instead of to
    repl: we ship its new records to the partition's synced followers as
    CREPL_RECORDs at the next positions, exactly as a publish's (their
    origin travels: a follower stores them as not local), hold the batch
    until the ack rule holds for them (c_decide, the wait a publish has),
    then give it to repl, which confirms to the sender DC only then: a
    confirmed record survives the loss of this leader. A batch whose records
    were not acknowledged (lost leadership, cluster/ack_timeout) goes back
    with its err set: repl makes the sender resend, and what we hold is
    dropped by msg_id. Batches go back in arrival order (repl's cursors
    only move forward).

    An inbound ack-state change (REPL_ACKSTATE) is not shipped here: it
    reaches the followers in the commit's NOTICE as a CREPL_GROUP op with
    aux TERN_GOP_AUX_PEER (tern_crepl_group.c), asynchronously like any
    group op.
*/
#include "tern_crepl_priv.h"
#include <string.h>

void c_inbound(c_repl_t *self, tern_repl_batch_t *batch) {
    c_held_t *held = tern_alloc(sizeof *held);
    held->batch = batch;
    uint64_t now = tern_now_ms();
    held->deadline_ms = now + self->config->ack_timeout_ms;
    for (size_t i = 0; i < batch->count && batch->err == TERN_OK; i++) {
        tern_repl_rec_t *rec = batch->recs[i];
        if (rec->frame.cmd != TERN_CMD_REPL_RECORD || rec->result.err != TERN_OK) {
            continue;
        }
        c_need_t *need = c_held_need(self, held, c_partition_of(self, rec->frame.topic));
        if (!need->decided) {
            c_ship_next(self, need, &rec->frame, &rec->result, &rec->body, now);
        }
    }
    //  The commit's NOTICE (its records for route) comes after its
    //  COMMITTED and waits for these records too.
    c_last_needs_add(self, held);
    c_held_push(&self->inbound, &self->inbound_tail, held);
}

//  Gives HELD's batch back to repl (its err: the first failed partition's)
//  and frees HELD.
static void s_forward(c_repl_t *self, c_held_t *held) {
    tern_repl_batch_t *batch = held->batch;
    for (size_t i = 0; i < held->count && batch->err == TERN_OK; i++) {
        batch->err = held->needs[i].err;
    }
    if (!self->repl_sock && self->args->repl_inbox[0]) {
        tern_work_push_connect(&self->repl_sock, self->args->repl_inbox);
    }
    if (!self->repl_sock ||
        tern_work_send(zsock_resolve(self->repl_sock), TERN_WORK_REPL_DONE, batch) != 0) {
        tern_repl_batch_destroy(&batch); //  the sender resends after a reconnect
    }
    free(held->needs);
    free(held);
}

void c_inbound_evaluate(c_repl_t *self) {
    if (!self->inbound) {
        return;
    }
    uint64_t now = tern_now_ms();
    bool lease_ok = tern_cluster_lease_ok(self->cluster);
    self->eval_gen++;
    while (self->inbound) {
        c_held_t *held = self->inbound;
        if (!c_held_decide(self, held, lease_ok, now)) {
            return; //  in arrival order
        }
        self->inbound = held->next;
        if (!self->inbound) {
            self->inbound_tail = NULL;
        }
        s_forward(self, held);
    }
}
