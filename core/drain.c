/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Drain: quiescing a node and every node above it, so that an operation
 * that rewrites metadata (snapshots, vmstate, truncate) sees no guest
 * request in flight and none starting.
 *
 * Every request admitted to a node counts in bs->in_flight until its
 * caller has been told the result.  bh_node_drain_begin() marks the node
 * and its ancestors quiesced, parents before children (QEMU's order: a
 * parent's requests in flight still need their children, so each node is
 * waited for before the one below it is closed), and returns once none
 * of them has a request in flight.  bh_node_drain_end() reopens them,
 * children before parents.
 *
 * Who passes a drained node: the thread that drained it (its owner).
 * The section's own work (a snapshot writing qcow2 metadata through the
 * file child, a truncate) runs on that thread, synchronously, so its
 * requests go through; every other thread's requests wait: a synchronous
 * caller blocks in bh_drain_enter(), an asynchronous one is queued and
 * submitted again by drain_end.  Drained sections nest on the owner's
 * thread; another thread's drain_begin of the same node waits until the
 * owner has ended all of them, so a drained section is exclusive.
 *
 * A request's callback runs before its in-flight count drops, so when
 * drain_begin returns every callback has returned too.  A callback must
 * therefore never wait for a synchronous request on the node it came
 * from: during a drain that would wait for itself.
 *
 * The admission is two atomics (count, then look at quiesce; drain sets
 * quiesce, then looks at the count): one of the two always sees the
 * other, and nothing is locked or allocated unless a drain is under way.
 */
#include "core-priv.h"

/* Parent links change rarely (open, drop_child, unref); one lock. */
static GMutex drain_graph_lock;

void bh_drain_init(BhNode *bs)
{
    g_mutex_init(&bs->drain_lock);
    g_cond_init(&bs->drain_cond);
    bs->drain_queue_tail = &bs->drain_queue;
    bs->parents = g_ptr_array_new();
}

void bh_drain_clear(BhNode *bs)
{
    g_ptr_array_free(bs->parents, TRUE);
    g_mutex_clear(&bs->drain_lock);
    g_cond_clear(&bs->drain_cond);
}

void bh_drain_link(BhNode *parent, BhNode *child)
{
    g_mutex_lock(&drain_graph_lock);
    g_ptr_array_add(child->parents, parent);
    g_mutex_unlock(&drain_graph_lock);
}

void bh_drain_unlink(BhNode *parent, BhNode *child)
{
    g_mutex_lock(&drain_graph_lock);
    g_ptr_array_remove(child->parents, parent);
    g_mutex_unlock(&drain_graph_lock);
}

/* Is bs drained by somebody other than this thread? */
static bool drain_closed(BhNode *bs)
{
    return g_atomic_int_get(&bs->quiesce) > 0 &&
           g_atomic_pointer_get(&bs->drain_owner) != g_thread_self();
}

void bh_drain_leave(BhNode *bs)
{
    if (g_atomic_int_dec_and_test(&bs->in_flight) &&
        g_atomic_int_get(&bs->quiesce) > 0) {
        g_mutex_lock(&bs->drain_lock);
        g_cond_broadcast(&bs->drain_cond);
        g_mutex_unlock(&bs->drain_lock);
    }
}

void bh_drain_enter(BhNode *bs)
{
    for (;;) {
        g_atomic_int_inc(&bs->in_flight);
        if (G_LIKELY(!drain_closed(bs)))
            return;
        bh_drain_leave(bs);
        g_mutex_lock(&bs->drain_lock);
        while (drain_closed(bs))
            g_cond_wait(&bs->drain_cond, &bs->drain_lock);
        g_mutex_unlock(&bs->drain_lock);
    }
}

bool bh_drain_try_enter(BhNode *bs, BhRequest *req)
{
    for (;;) {
        g_atomic_int_inc(&bs->in_flight);
        if (G_LIKELY(!drain_closed(bs)))
            return true;
        bh_drain_leave(bs);
        /* Queue it unless the drain ended meanwhile (drain_end empties
         * the queue under the same lock, so nothing is left behind). */
        g_mutex_lock(&bs->drain_lock);
        if (drain_closed(bs)) {
            req->next = NULL;
            *bs->drain_queue_tail = req;
            bs->drain_queue_tail = &req->next;
            g_mutex_unlock(&bs->drain_lock);
            return false;
        }
        g_mutex_unlock(&bs->drain_lock);
    }
}

/* bs and every node above it, each once, parents before children. */
static void drain_collect(BhNode *bs, GPtrArray *order, GHashTable *seen)
{
    /* A parent being closed on another thread, not yet unlinked, has
     * nothing left to drain. */
    if (!g_hash_table_add(seen, bs) || !bh_node_try_ref(bs))
        return;
    /* Post-order over the parents: every node comes after all the nodes
     * above it. */
    for (guint i = 0; i < bs->parents->len; i++)
        drain_collect(bs->parents->pdata[i], order, seen);
    g_ptr_array_add(order, bs);
}

/* Close one node: become its owner (waiting for another thread's drain
 * to end), then wait until its requests in flight are done. */
static void drain_node_begin(BhNode *bs)
{
    GThread *self = g_thread_self();

    g_mutex_lock(&bs->drain_lock);
    while (drain_closed(bs))
        g_cond_wait(&bs->drain_cond, &bs->drain_lock);
    g_atomic_pointer_set(&bs->drain_owner, self);
    g_atomic_int_inc(&bs->quiesce);
    while (g_atomic_int_get(&bs->in_flight) > 0)
        g_cond_wait(&bs->drain_cond, &bs->drain_lock);
    g_mutex_unlock(&bs->drain_lock);
}

/* Open one node again; the requests that queued up go out once it is. */
static void drain_node_end(BhNode *bs)
{
    BhRequest *queued = NULL;

    g_mutex_lock(&bs->drain_lock);
    if (g_atomic_int_dec_and_test(&bs->quiesce)) {
        g_atomic_pointer_set(&bs->drain_owner, NULL);
        queued = bs->drain_queue;
        bs->drain_queue = NULL;
        bs->drain_queue_tail = &bs->drain_queue;
        g_cond_broadcast(&bs->drain_cond);
    }
    g_mutex_unlock(&bs->drain_lock);
    while (queued) {
        BhRequest *next = queued->next;
        bh_node_submit(queued);
        queued = next;
    }
}

int bh_node_drain_begin(BhNode *bs)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
    GPtrArray *order = g_ptr_array_new();

    g_mutex_lock(&drain_graph_lock);
    drain_collect(bs, order, seen);
    g_mutex_unlock(&drain_graph_lock);
    /* order starts with a top-most parent and ends with bs. */
    for (guint i = 0; i < order->len; i++)
        drain_node_begin(order->pdata[i]);
    /* drain_end takes back exactly these nodes, whatever the graph
     * became meanwhile (a snapshot view opened over the file, say). */
    g_mutex_lock(&bs->drain_lock);
    bs->drain_sets = g_slist_prepend(bs->drain_sets, order);
    g_mutex_unlock(&bs->drain_lock);
    return 0;
}

void bh_node_drain_end(BhNode *bs)
{
    g_mutex_lock(&bs->drain_lock);
    GPtrArray *order = bs->drain_sets ? bs->drain_sets->data : NULL;
    if (order)
        bs->drain_sets = g_slist_delete_link(bs->drain_sets, bs->drain_sets);
    g_mutex_unlock(&bs->drain_lock);
    g_return_if_fail(order != NULL);
    /* Children before parents: bs first. */
    for (guint i = order->len; i-- > 0;)
        drain_node_end(order->pdata[i]);
    for (guint i = 0; i < order->len; i++)
        bh_node_unref(order->pdata[i]);
    g_ptr_array_free(order, TRUE);
}
