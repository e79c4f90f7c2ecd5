// GraphiQL's start-up (a file, not inline script: the page's CSP allows scripts from the service only).
// Every request, the schema's introspection included, carries the headers of the header editor,
// which starts with an empty X-API-Key: paste a key (or use "Authorization": "Bearer <token>"),
// then re-fetch the schema from the sidebar. Headers with an empty value are not sent.
(function () {
  var root = document.getElementById("graphiql");
  var endpoint = new URL(root.dataset.endpoint, window.location.href).href;
  function fetcher(params, options) {
    var headers = { "Content-Type": "application/json", Accept: "application/json" };
    var given = (options && options.headers) || {};
    Object.keys(given).forEach(function (name) {
      if (given[name] !== "" && given[name] !== null && given[name] !== undefined) headers[name] = given[name];
    });
    return fetch(endpoint, { method: "POST", headers: headers, body: JSON.stringify(params) }).then(function (r) {
      return r.json();
    });
  }
  ReactDOM.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultHeaders: JSON.stringify({ "X-API-Key": "" }, null, 2),
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: "headers",
    }),
    root
  );
})();
