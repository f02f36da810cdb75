"""RabbitMQ: the job queue between fronts and render workers.

The only package that imports the AMQP client (aio-pika; `link`,
`front` and `consumer` only). Its modules:

- `link`: the connection (started in the background, reconnected by itself)
  and the queue topology that fronts and workers both declare;
- `front`: the front's side of the RPC (`BrokerRenderer`, the broker-mode
  implementation of `renderer.Renderer`);
- `consumer`: the worker's side (`JobConsumer`, which hands each job to the
  worker as a `Delivery`);
- `worker`: what a render worker does with a job (the embedded render stage;
  knows nothing of AMQP);
- `jobs`: the job and reply messages, the wire format (pure).

Topology, declared identically by fronts and workers:

    previewer.render        quorum queue of jobs: x-delivery-limit (a job that
                            kills its worker every time is dead-lettered, not
                            redelivered forever), x-max-length with
                            reject-publish (a full queue refuses at once, and
                            the front answers 503), dead-lettering to
    previewer.render.dead   jobs that were malformed, over the delivery limit or
                            expired (bounded like the job queue, oldest dropped)
    previewer.render.reply.<id>
                            a front's exclusive reply queue, one for each
                            connection: a new name after every reconnect, so
                            a job published before a connection was lost
                            names a queue that no longer exists

A job expires in the queue when its request's deadline passes (per-message
TTL), so a worker never renders for a client that has given up.
"""
