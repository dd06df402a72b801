let calls = 0; // module state survives warm invocations

exports.handler = async (event, context) => {
  calls += 1;
  if (event.op === "error") {
    throw new Error("boom: " + (event.value || ""));
  }
  return {
    runtime: "node",
    event,
    calls,
    function_name: context.functionName,
    function_version: context.functionVersion,
    request_id: context.awsRequestId,
    greeting: process.env.GREETING || null,
    client_custom: context.clientContext ? context.clientContext.custom || null : null,
  };
};
