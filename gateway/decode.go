package gateway

import (
	"strings"

	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// decode turns a client data frame into a FireInfo; a frame it refuses
// comes back marked (reject) for its error to be answered in order.
func (t *FireTower) decode(mt int, data []byte) *FireInfo {
	// No Context yet: it is made where the frame is handled (the executor,
	// or here on a read timeout), so that it sees the UserId the application
	// set, in OnConnect for instance, without a data race.
	fire := &FireInfo{MessageType: mt, Message: &TopicMessage{}}
	if mt != websocket.TextMessage {
		return t.reject(fire, protocol.CodeBadRequest, "binary frames are not accepted")
	}
	frame, err := protocol.Decode(t.version, data)
	fire.reqID = frame.ID
	if err != nil {
		return t.reject(fire, protocol.CodeBadRequest, err.Error())
	}
	fire.Message.Type, fire.Message.Topic, fire.Message.Data = frame.Type, frame.Topic, frame.Data
	fire.token = frame.Token
	switch frame.Kind(t.version) {
	case protocol.KindSubscribe, protocol.KindUnsubscribe:
		topics, err := frame.TopicList(t.gw.cfg.MaxTopicLength)
		if err != nil {
			return t.reject(fire, codeOf(err), err.Error())
		}
		fire.topics = topics
		fire.Message.Topic = strings.Join(topics, ",")
	case protocol.KindMessage:
		if t.version == protocol.V1 && frame.Topic == "" {
			return t.reject(fire, protocol.CodeInvalidTopic, "topic is empty") // as the original did
		}
	}
	return fire
}

// reject counts a refused client frame and marks it: its v2 error is
// answered from the inbox, in order with the replies to the frames before
// it (dispatch).
func (t *FireTower) reject(fire *FireInfo, code int, msg string) *FireInfo {
	t.gw.stats.protocolErrors.Add(1)
	fire.rejectCode, fire.rejectMsg = code, msg
	return fire
}
